"""The filtering service: serves (B, B') pairs, answering N where the filter flags an input.

Layers, top to bottom: ``api`` (HTTP: routes, uploads, errors, metrics), ``serving`` (the
model repository, the batcher, the runtimes, repair jobs; no HTTP), ``core`` (settings).
"""
