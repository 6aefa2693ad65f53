"""Deprecated alias of :mod:`memlib.runner.lab` (kept for one release)."""
from ._compat import moved

moved(__name__, "memlib.runner.lab")
