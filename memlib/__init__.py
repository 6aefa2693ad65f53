"""memlib: a reproducible companion to the research on memorization vs. generalization in deep networks.

Modules are imported on use (``from memlib import data, models, train``); importing memlib itself
does no work, seeds nothing and creates no folders.
"""
__version__ = "0.1.0"
