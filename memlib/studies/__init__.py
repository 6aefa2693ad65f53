"""One module per study: ``Config``, ``run(cfg) -> Result``, ``claims(result)``, ``plot_*(result)``.

A study module is named like its notebook without the number (``01_randomization_tests.ipynb`` →
``memlib.studies.randomization_tests``) and never imports another study.

**Where code lives.** A function another study or a test could call — an algorithm from a paper, a measurement,
a statistic — lives in :mod:`memlib.methods` (with its own oracle tests) or in :mod:`memlib.stats`; the ML core
(data, models, training, activations, gradients) lives beside them in ``memlib``. A study module holds only its
wiring (which conditions, which models, which measurements, in what order), its tables, its claims (one function
per claim, thresholds fixed before results, built from :mod:`memlib.studies.common`'s shared checks) and its
figures. ``studies/common.py`` holds the skeleton all studies share. Nothing here imports :mod:`memlib.runner`.
"""
