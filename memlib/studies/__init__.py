"""One module per study: ``Config``, ``run(cfg) -> Result``, ``claims(result)``, ``plot_*(result)``.

A study module is named like its notebook without the number (``01_randomization_tests.ipynb`` →
``memlib.studies.randomization_tests``) and never imports another study.
"""
