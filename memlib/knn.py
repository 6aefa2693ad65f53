"""Deprecated alias of :mod:`memlib.methods.knn` (kept for one release)."""
from ._compat import moved

moved(__name__, "memlib.methods.knn")
