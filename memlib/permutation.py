"""Deprecated alias of :mod:`memlib.methods.permutation` (kept for one release)."""
from ._compat import moved

moved(__name__, "memlib.methods.permutation")
