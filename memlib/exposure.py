"""Deprecated alias of :mod:`memlib.methods.exposure` (kept for one release)."""
from ._compat import moved

moved(__name__, "memlib.methods.exposure")
