"""The HTTP routes, one module per group; :func:`app.main.create_app` includes them."""
