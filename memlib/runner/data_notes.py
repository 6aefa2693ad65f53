"""Why a claim's verdict depends on the data: one line per (study, claim) whose verdict differs between profiles,
taken from the notebooks' diagnoses and the measured numbers of both runs. :mod:`memlib.runner.matrix` shows the
line beside a row whose verdicts differ (and nothing for a row that agrees).

These notes live with the runner, not in the study modules, so that writing one never changes a study's code
fingerprint (and never makes its results stale). A note states what was measured; where the cause is not known,
it says so."""
from __future__ import annotations

NOTES: dict[str, dict[str, str]] = {
    "noise_vs_capacity": {
        "width_grows_randX": "on 1,000 digits the narrowest width within 1 % of the best is noise (16 units suffice at "
                             "p = 0.2, 64 at p = 0), so w* does not rank the noise levels; on 2,000 MNIST images w* "
                             "is fragile too: 32, 64, 64, 128, 128 in one real run (ρ = 0.949, Intel Xeon), 32, 64, "
                             "256, 128, 128 in another (ρ = 0.667, AMD EPYC, later code)",
        "width_grows_randY": "on 1,000 digits w* is 64, 16, 64, 64, 256 (16 units already fit p = 0.2: the narrowest "
                             "width within 1 % of the best is noise); on 2,000 MNIST images it rises 32 → 512",
    },
    "easiness": {
        "spread_real_vs_randX": "on MNIST 99.5 % of randX's variance lies between classes: after one epoch on "
                                "noise the networks predict mostly class 1, MNIST's most frequent (its examples wrong "
                                "in 15 % of the runs, the others in 92–100 %), so randX's spread comes from its "
                                "labels, not from the examples (digits: 67 % between classes)",
        "randY_between": "randX's class-frequency spread on MNIST (see the first claim) puts it above randY",
    },
    "nmf_nonlinearity": {
        "rise_deeper_than_first_audio_cnn1d": "the experiment did not work on FSDD: after 120 epochs the p = 1 network "
                                              "fits only 67.0 % of its random labels (needs 95 %), so the claim says "
                                              "no although conv3's rise (0.196) exceeds conv1's (0.0771) in 3/3 seeds; "
                                              "on the synthetic clips p = 1 is memorized",
    },
    "regularization": {
        "dropout_flattest": "measured, not diagnosed further: on 1,000 MNIST images the ranking turns on whether "
                            "dropout + adversarial training removes ≥ 5 points of randY accuracy: in two real runs "
                            "(Intel Xeon; AMD EPYC with each seed its own runs) it did not, weight decay was "
                            "flattest (0.00956 in the later) and dropout fourth of four (0.231); in one between "
                            "them (all seeds' settings in one batched run) it did and was flattest (slope −0.249); "
                            "on digits dropout + adversarial training is flattest",
    },
    "learning_order": {
        "bimodal_real": "measured, not diagnosed further: at A's one judged epoch (epoch 1) 79 % of the digits are "
                        "still in the band (0.81 × binomial, p̄ = 0.54); on MNIST 19 % (0.31 ×, p̄ = 0.75)",
        "split_half": "measured, not diagnosed further: the MLP fits the digits fast (mean TP-agreement passes "
                      "0.5 within epoch 1, 93 % training accuracy at epoch 12) and halves of 10 networks agree at "
                      "ρ 0.82; on 2,000 MNIST images ρ = 0.93 (the CNN B on digits: 0.89)",
        "split_half_test": "measured, not diagnosed further: ρ 0.84 on the digits' test set, 0.92 on MNIST's",
    },
    "mixup": {
        "erm_last_exceeds_best": "borderline on 3,000 MNIST images at p = 0.2, where the threshold is 2 points: ERM's "
                                 "best–last gap was 2.5 points in one real run (AMD EPYC) and 1.93 in another (Intel "
                                 "Xeon, 2026-12-07); at p = 0.5 and 0.8 it is 17–27 points in both. Not diagnosed "
                                 "further: the two runs differ in CPU and in memlib version",
    },
    "loss_sensitivity": {
        "per_class_off_diagonal": "not diagnosed: on MNIST 14×14 (the paper's data) real data spreads more off the "
                                  "diagonal (80.6 vs 74.5 %); on 8×8 digits less (77.2 vs 80.6 %)",
    },
}
