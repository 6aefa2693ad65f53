"""The top of memlib: everything that runs notebooks and reports on them. Nothing below this package imports it.

Layers, each importing only those before it (tests/test_architecture.py checks it):

* :mod:`~memlib.runner.registry` — which studies exist, their notebooks, the parameters a request gives each;
* :mod:`~memlib.runner.runstate` — each study's run record (``run.json``), the code fingerprint and the one
  freshness rule (current or not) that the runner and the scoreboard share;
* :mod:`~memlib.runner.scoreboard` — every study's state (current, stale, failed, missing) and its claims;
* :mod:`~memlib.runner.mathml`, :mod:`~memlib.runner.report` — the offline HTML report and executed notebooks;
* :mod:`~memlib.runner.run` — the command line (``python -m memlib.runner``, ``make``): profile merge, checks
  before any work, papermill execution, one writer per study folder (:mod:`~memlib.runner.lock`), studies and
  sweep cells as tasks of a Dask cluster (:mod:`~memlib.runner.cluster`, ``--scheduler``);
  :mod:`~memlib.runner.lab` — the ``make lab`` save hook.
"""
