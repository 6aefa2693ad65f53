"""``python -m memlib.runner`` — the runner's command line (:func:`memlib.runner.run.main`)."""
import sys

from .run import main

sys.exit(main())
