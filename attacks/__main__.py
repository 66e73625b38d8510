"""``python -m attacks``."""

import sys

import repair  # noqa: F401 - sets the Keras 2 environment before TensorFlow loads
from attacks.cli import main

if __name__ == "__main__":
    sys.exit(main())
