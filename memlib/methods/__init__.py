"""The papers' algorithms as pure, typed functions, each with its own oracle tests.

A function another study or a test could call lives here (or in :mod:`memlib.stats`); a study module holds wiring,
tables, claims and figures. Each module's docstring gives the pseudo-code and the source of every detail:

* :mod:`~memlib.methods.sensitivity` — loss-sensitivity by one-step unrolled SGD, per example and per class
  (Arpit et al. 2017 §3.2);
* :mod:`~memlib.methods.lass` — critical samples by Langevin adversarial sample search (Arpit et al. 2017 §4);
* :mod:`~memlib.methods.nmf` — batched NMF reconstruction error and non-linearity (Collins et al. 2018);
* :mod:`~memlib.methods.knn` — k-NN with the leave-one-out rule on embeddings (Cohen et al. 2018);
* :mod:`~memlib.methods.permutation` — batched softmax regressions and the permutation test (Chaibub Neto 2018);
* :mod:`~memlib.methods.mixup` — mixup's convex combinations and loss (Zhang et al. 2018);
* :mod:`~memlib.methods.exposure` — ranks and exposure of canaries, exact by a digit trie (Carlini et al. 2019);
* :mod:`~memlib.methods.agreement` — TP-agreement, accessibility and their binomial and split-half references
  (Hacohen et al. 2020);
* :mod:`~memlib.methods.memorization` — Feldman–Zhang memorization and influence, the C-score over subset ratios
  (Feldman & Zhang 2020; Jiang et al. 2021);
* :mod:`~memlib.methods.lira` — LiRA membership inference (online, fixed variance, offline, global threshold), its
  ROC and TPR at low FPR (Carlini et al. 2022);
* :mod:`~memlib.methods.dynamics` — forgetting events, margins and AUM, dataset-map confidence and variability
  (Toneva et al. 2019; Pleiss et al. 2020; Swayamdipta et al. 2020);
* :mod:`~memlib.methods.ranking` — Spearman matrices, bootstrap intervals, split halves and cost curves of
  per-example scores (study 14).
"""
