"""``python -m repair``; ``python -m repair demo ARGS`` is ``python -m attacks ARGS``."""

import os
import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["demo"]:
        # The demo builder lives with the attacks, which import the defence, never the
        # other way: hand over to it as a new program instead of importing it.
        os.execv(sys.executable, [sys.executable, "-m", "attacks", *sys.argv[2:]])
    import repair  # noqa: F401 - sets the Keras 2 environment before TensorFlow loads
    from repair.cli import main

    sys.exit(main())
