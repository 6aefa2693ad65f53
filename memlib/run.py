"""``python -m memlib.run`` — the runner's command line, an alias of ``python -m memlib.runner`` (see
:mod:`memlib.runner.run`). Importing ``memlib.run`` is deprecated: import :mod:`memlib.runner.run`."""
import sys

if __name__ == "__main__":
    from memlib.runner.run import main

    sys.exit(main())
else:
    from ._compat import moved

    moved(__name__, "memlib.runner.run")
