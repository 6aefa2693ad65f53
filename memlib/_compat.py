"""Old import paths kept for one release (0.2) after the layout change: ``memlib.knn`` → ``memlib.methods.knn``,
``memlib.run`` → ``memlib.runner.run``, … Importing an old path gives the very same module object, with a
``DeprecationWarning`` naming the new path. Removed in memlib 0.3."""
from __future__ import annotations

import importlib
import sys
import warnings


def moved(old: str, new: str) -> None:
    """Make module ``old`` an alias of module ``new`` (the same object in ``sys.modules``) and warn once."""
    warnings.warn(f"{old} moved to {new}; the old path is removed in memlib 0.3", DeprecationWarning, stacklevel=3)
    sys.modules[old] = importlib.import_module(new)
