"""Study 11 (exposure): canaries, insertion, corpus loading, bad input before any work, and claims on hand-made
results that must say yes — and no when one definition fails."""
import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from memlib.studies import exposure as study


# ----------------------------------------------------------------------------- canaries and insertion

def test_canaries_are_distinct_and_absent_from_the_corpus():
    corpus = "digits 0123456 appear here"
    got = study.draw_canaries(np.random.default_rng(0), 3, 1, corpus)
    assert sorted(got) == ["7", "8", "9"]  # every other single digit occurs in the corpus
    with pytest.raises(ValueError, match="digits"):
        study.draw_canaries(np.random.default_rng(0), 4, 1, corpus)
    many = study.draw_canaries(np.random.default_rng(1), 50, 4, "1234 5678")
    assert len(set(many)) == 50 and all(len(s) == 4 and s.isdigit() and s not in "1234 5678" for s in many)


def test_lines_go_in_after_line_breaks_and_come_out_again():
    text = "alpha\nbeta\ngamma\ndelta\n"
    lines = ["X1\n", "X2\n", "X2\n"]
    new, points, which = study.insert_lines(text, lines, np.random.default_rng(3))
    breaks = [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    assert list(points) == sorted(points) and set(points) <= set(breaks) and len(set(points)) == 3
    assert sorted(which.tolist()) == [0, 1, 2]
    assert new.count("X1\n") == 1 and new.count("X2\n") == 2
    assert new.replace("X1\n", "").replace("X2\n", "") == text  # nothing else changed
    # rebuild by hand from points and which
    parts, last = [], 0
    for p, k in zip(points, which):
        parts += [text[last:p], lines[k]]
        last = p
    assert "".join(parts) + text[last:] == new
    with pytest.raises(ValueError, match="line breaks"):
        study.insert_lines("no breaks", ["X\n"], np.random.default_rng(0))


# ----------------------------------------------------------------------------- corpus and bad input

def test_corpus_file_is_read_as_utf8(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("héllo\r\nworld\n", encoding="utf-8")
    assert study.load_corpus(str(p)) == "héllo\nworld\n"
    assert len(study.load_corpus(None)) > 100000  # the embedded pydoc corpus


@pytest.mark.parametrize("content, match", [(None, "no such file"), (b"", "empty"), (b"  \n ", "empty"),
                                            (b"abc\xff\xfe", "not UTF-8")])
def test_bad_corpus_files_are_refused_before_any_work(tmp_path, content, match):
    p = tmp_path / "c.txt"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ValueError, match=f"corpus_path.*{match}"):
        study.Config(corpus_path=str(p))


def test_a_short_corpus_is_refused(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("short text\n" * 10)
    with pytest.raises(ValueError, match="corpus_path"):
        study.Config(corpus_path=str(p))


@pytest.mark.parametrize("kwargs, name, says", [
    ({"digits": 0}, "digits", "positive"),
    ({"digits": 8}, "digits", "exact_rank False"),
    ({"insertions": (0, 1, -1)}, "insertions", "≥ 0"),
    ({"insertions": (1, 2, 4)}, "insertions", "include 0"),
    ({"noise_multipliers": (0.0,)}, "noise_multipliers", "positive"),
    ({"noise_multipliers": (-1.0, 1.0)}, "noise_multipliers", "positive"),
    ({"dp_epochs": 13}, "dp_epochs", "epochs"),
    ({"n_samples": 10}, "n_samples", "100"),
    ({"measure_fractions": (0.5, 1.5)}, "measure_fractions", "fractions"),
    ({"measure_fractions": (0.5, 0.25)}, "measure_fractions", "increasing"),
    ({"hidden": 0}, "hidden", "integer"),
])
def test_bad_parameters_are_refused_with_their_name(kwargs, name, says):
    with pytest.raises(ValueError, match=name) as e:
        study.Config(**kwargs)
    assert says in str(e.value)


def test_old_name_eval_points_is_an_alias_with_a_warning():
    with pytest.warns(UserWarning, match="'eval_points' is now called 'measure_fractions'"):
        cfg = study.Config.from_dict({"eval_points": [0.2, 0.6]})
    assert cfg.measure_fractions == (0.2, 0.6)
    with pytest.raises(TypeError, match="both given"):
        study.Config.from_dict({"eval_points": [0.2], "measure_fractions": [0.2]})


def test_large_digits_pass_without_the_exact_rank_or_on_a_gpu():
    study.Config(digits=9, exact_rank=False)
    study.Config(digits=9, device="cuda")


# ----------------------------------------------------------------------------- claims on hand-made results

def fake_result(exp_final=(3.0, 5.0, 12.0, 18.0, 19.93), control=1.0, first_epoch=12.0, peak_epoch=3,
                valid=(3.5, 3.0, 2.6, 2.4, 2.3, 2.25, 2.3), skew_shift=0.3, dp_final=1.5, dp_loss=3.5, seed=0):
    """A one-seed Result as the study would build it, written out by hand: 6 canaries (control + n = 1, 2, 4, 8,
    16), a non-private model evaluated at epochs 0, 0.5, 1 … 7 (the most-inserted canary rises to 19.93 at
    ``peak_epoch``), one DP model of 4 epochs."""
    counts = [0, 1, 2, 4, 8, 16]
    space_bits = math.log2(10**6)
    canaries = pd.DataFrame(dict(canary=range(6), secret=[f"{k:06d}" for k in range(6)], index=range(6),
                                 insertions=counts))
    epochs = [0.0, 0.5] + [float(e) for e in range(1, 8)]
    losses = dict(zip(epochs, [6.0, 4.5] + list(valid)))
    rows, hist = [], []
    for ep in epochs:
        hist.append(dict(model="non-private", epoch=ep, step=int(ep * 10), train_loss=losses[ep] - 0.1,
                         valid_loss=losses[ep]))
        for k, n in enumerate(counts):
            if n == 0:
                e = control
            elif n == 16:
                e = 1.0 if ep == 0 else (first_epoch if ep <= 1 else (space_bits if ep >= peak_epoch else 15.0))
            else:
                e = exp_final[k - 1] * min(1.0, ep / 7) if ep else 0.5
            rank = round(2 ** (space_bits - e))
            rows.append(dict(model="non-private", epoch=ep, step=int(ep * 10), canary=k, insertions=n, rank=rank,
                             exposure=e, px=20.0 - e))
    for ep in [0.0, 1.0, 2.0, 3.0, 4.0]:
        hist.append(dict(model="DP σ=1", epoch=ep, step=int(ep * 10), train_loss=5.0, valid_loss=dp_loss, epsilon=ep))
        for k, n in enumerate(counts):
            rows.append(dict(model="DP σ=1", epoch=ep, step=int(ep * 10), canary=k, insertions=n,
                             rank=round(2 ** (space_bits - dp_final)), exposure=dp_final, px=30.0))
    ex = pd.DataFrame(rows)
    final = []
    for name in ("non-private", "DP σ=1"):
        last = ex[(ex.model == name) & (ex.epoch == ex[ex.model == name].epoch.max())]
        for _, r in last.iterrows():
            final.append(dict(model=name, canary=r.canary, insertions=r.insertions, rank=r["rank"], exposure=r.exposure,
                              skewnorm=r.exposure + skew_shift, sampled=min(r.exposure, 12.0), px=r.px))
    models = pd.DataFrame([
        dict(model="non-private", noise_multiplier=float("nan"), epochs=7.0, epsilon=float("nan"),
             delta=float("nan"), valid_loss=losses[7.0], reference_loss=losses[7.0], unigram_loss=4.6),
        dict(model="DP σ=1", noise_multiplier=1.0, epochs=4.0, epsilon=4.0, delta=1e-5, valid_loss=dp_loss,
             reference_loss=losses[4.0], unigram_loss=4.6)])
    cfg = study.Config(noise_multipliers=(1.0,), epochs=7, dp_epochs=4, measure_fractions=(0.5,), seeds=(seed,))
    rng = np.random.default_rng(seed)
    arrays = dict(seeds=np.array([seed]), sample_index=np.arange(100)[None],
                  sample_px=rng.normal(20.0, 2.0, (1, 2, 100)), skewnorm_params=np.array([[[0.0, 20.0, 2.0]] * 2]),
                  canary_index=np.arange(6)[None], insertion_points=np.zeros((1, 31), np.int64),
                  insertion_canary=np.zeros((1, 31), np.int64))
    tables = dict(canaries=canaries, history=pd.DataFrame(hist), exposures=ex, final=pd.DataFrame(final),
                  models=models)
    return study.Result(config=cfg, arrays=arrays, meta={"space_bits": space_bits},
                        **{k: t.assign(seed=seed)[["seed", *t.columns]] for k, t in tables.items()})


def stacked(*results):
    """One Result of the hand-made one-seed ``results`` (in their order), laid out as :func:`study.run` lays out
    several seeds: tables one after the other, arrays on a leading seed axis."""
    seeds = tuple(int(r.config.seeds[0]) for r in results)
    tables = {k: pd.concat([getattr(r, k) for r in results], ignore_index=True)
              for k in ("canaries", "history", "exposures", "final", "models")}
    arrays = {k: np.concatenate([r.arrays[k] for r in results]) for k in results[0].arrays}
    return study.Result(config=dataclasses.replace(results[0].config, seeds=seeds), arrays=arrays,
                        meta=results[0].meta, **tables)


def verdicts(result):
    return {c.id: c.reproduced for c in study.claims(result)}


# The definitions are tested one seed at a time (``seed_claims``, the measured text of one seed, as before seeds
# came in); how the seeds combine is tested further down.


def test_claims_say_yes_when_the_experiment_shows_it():
    assert verdicts(fake_result()) == {"exposure_grows_with_insertions": True, "control_stays_low": True,
                                       "exposure_measurable_first_epoch": True,
                                       "exposure_peaks_before_overfitting": True, "extrapolation_matches_exact": True,
                                       "dp_sgd_removes_exposure": True}


@pytest.mark.parametrize("kwargs, claim", [
    ({"exp_final": (3.0, 18.0, 12.0, 5.0, 19.93)}, "exposure_grows_with_insertions"),  # ρ = 0.3
    ({"control": 10.5}, "control_stays_low"),
    ({"first_epoch": 8.0}, "exposure_measurable_first_epoch"),     # not measurable in the first epoch
    ({"peak_epoch": 7}, "exposure_peaks_before_overfitting"),      # peaks after the validation-loss minimum
    ({"valid": (3.5, 3.0, 2.6, 2.4, 2.3, 2.25, 2.2)}, "exposure_peaks_before_overfitting"),   # still falling
    ({"valid": (3.5, 3.0, 2.6, 2.4, 2.3, 2.25, 2.25)}, "exposure_peaks_before_overfitting"),  # flat after its minimum
    ({"skew_shift": 1.5}, "extrapolation_matches_exact"),
    ({"exp_final": (3.0, 5.0, 8.0, 12.0, 19.93)}, "extrapolation_matches_exact"),  # no compared canary > log₂ 5000
    ({"dp_final": 11.0}, "dp_sgd_removes_exposure"),               # the private model still exposes a canary
    ({"dp_loss": 4.5}, "dp_sgd_removes_exposure"),                 # the private model did not learn
])
def test_each_claim_says_no_when_its_definition_fails(kwargs, claim):
    v = verdicts(fake_result(**kwargs))
    assert v[claim] is False
    assert sum(not x for x in v.values()) == 1, v  # and only that one


def test_without_the_exact_rank_every_claim_says_no_and_why():
    r = fake_result()
    r.config = study.Config(noise_multipliers=(1.0,), epochs=7, dp_epochs=4, measure_fractions=(0.5,),
                            exact_rank=False)
    c = {x.id: x for x in study.seed_claims(r)}
    assert not any(x.reproduced for x in c.values())
    assert all(x.measured.endswith("; not measured: exact_rank is False") for x in c.values()), c
    assert c["extrapolation_matches_exact"].measured == "no canary with an exact rank > 1; not measured: exact_rank " \
                                                        "is False"


def test_claims_on_the_non_private_model_need_it_to_have_learned_the_language():
    r = fake_result()
    r.models.loc[r.models.model == "non-private", "unigram_loss"] = 2.5  # final valid loss 2.3: only 0.2 bits below
    c = {x.id: x for x in study.seed_claims(r)}
    needs = ("exposure_grows_with_insertions", "control_stays_low", "exposure_measurable_first_epoch",
             "exposure_peaks_before_overfitting", "extrapolation_matches_exact")
    assert {k: x.reproduced for k, x in c.items()} == {k: k not in needs for k in c}
    for k in needs:
        assert c[k].measured.endswith("; the model did not learn: valid loss 2.3 vs unigram 2.5 bits/char")
    assert "did not learn" not in c["dp_sgd_removes_exposure"].measured


def test_a_private_model_that_did_not_learn_is_named():
    c = {x.id: x for x in study.seed_claims(fake_result(dp_loss=4.5))}
    assert c["dp_sgd_removes_exposure"].measured.endswith("(unigram 4.6) — did not learn")


def test_the_curve_and_labels_follow_the_canaries():
    r = fake_result()
    assert study.canary_labels(r) == {0: "control", 1: "n=1", 2: "n=2", 3: "n=4", 4: "n=8", 5: "n=16"}
    c = study.curve(r)
    assert list(c.index) == [0.0, 0.5] + [float(e) for e in range(1, 8)]
    assert c.loc[3.0, "n=16"] == pytest.approx(r.meta["space_bits"]) and c.loc[7.0, "valid_loss"] == 2.3


# ----------------------------------------------------------------------------- the claims' definitions, one by one

def test_exposure_that_saturates_at_rank_1_grows_though_its_ties_lower_rho():
    full = math.log2(10**6)
    c = {x.id: x for x in study.seed_claims(fake_result(exp_final=(13.0, full, full, full, full)))}
    assert c["exposure_grows_with_insertions"].reproduced is True
    assert c["exposure_grows_with_insertions"].measured.startswith("ρ = 0.707; non-decreasing up to rank 1: yes;")
    assert all(x.reproduced for x in c.values()), c  # nothing else changed


@pytest.mark.parametrize("series", [
    (13.0, 5.0, 19.93156856932417, 19.93156856932417, 19.93156856932417),  # ends at rank 1 but dips: ρ ≈ 0.35
    (5.0, 5.0, 5.0, 5.0, 10.0),    # non-decreasing, but not up to rank 1: ρ = 0.707
    (19.93156856932417,) * 5,      # rank 1 from one insertion on: saturated, no growth seen (ρ undefined)
])
def test_exposure_that_neither_correlates_nor_saturates_monotonically_does_not_grow(series):
    r = fake_result()
    f = r.final
    inserted = (f.model == "non-private") & (f.insertions > 0)
    r.final.loc[inserted, "exposure"] = series  # canaries in insertion order 1, 2, 4, 8, 16
    c = {x.id: x for x in study.seed_claims(r)}["exposure_grows_with_insertions"]
    assert c.reproduced is False
    assert "non-decreasing up to rank 1: no;" in c.measured


def test_peaks_before_overfitting_says_overfitting_was_not_reached():
    falling = {x.id: x for x in study.seed_claims(fake_result(valid=(3.5, 3.0, 2.6, 2.4, 2.3, 2.25, 2.2)))}
    c = falling["exposure_peaks_before_overfitting"]
    assert c.reproduced is False  # the exposure peaked (epoch 3) long before the last evaluation: still no
    assert c.measured.endswith("; overfitting not reached: the validation loss is still falling at the last "
                               "evaluation (epoch 7)")
    assert falling["exposure_measurable_first_epoch"].reproduced is True  # the first half does not need it
    flat = {x.id: x for x in study.seed_claims(fake_result(valid=(3.5, 3.0, 2.6, 2.4, 2.3, 2.25, 2.25)))}
    assert flat["exposure_peaks_before_overfitting"].measured.endswith(
        "; overfitting not reached: the validation loss does not rise after its minimum at epoch 6")
    good = {x.id: x for x in study.seed_claims(fake_result())}["exposure_peaks_before_overfitting"]
    assert good.reproduced is True and "overfitting not reached" not in good.measured
    assert good.measured == ("peak 19.9 bits at epoch 3; validation-loss minimum 2.25 bits/char at epoch 6 of 7, up "
                             "to 2.3 at epoch 7")


def test_extrapolation_needs_a_compared_canary_above_log2_n_samples_and_reports_both_sides():
    good = {x.id: x for x in study.seed_claims(fake_result())}["extrapolation_matches_exact"]
    assert good.reproduced is True
    # non-private n=8 (18 bits) is the one compared canary above log₂ 5000 = 12.29; below it: control, n=1, n=2,
    # n=4 and the 6 canaries of the private model (n=16 is at rank 1)
    assert good.measured.startswith("above log₂ 5000 = 12.29 bits (extrapolation needed): max |Δ| 0.3 bits, median "
                                    "0.3, over 1 canaries (1 within 1); below: max |Δ| 0.3 bits, median 0.3, over 10 "
                                    "canaries (10 within 1); 1 at rank 1 left out")
    low = fake_result(exp_final=(3.0, 5.0, 8.0, 12.0, 19.93))  # every compared canary below the line, all agree
    bad = {x.id: x for x in study.seed_claims(low)}["extrapolation_matches_exact"]
    assert bad.reproduced is False
    assert "above log₂ 5000 = 12.29 bits (extrapolation needed): no canary; below: max |Δ| 0.3 bits" in bad.measured
    assert bad.measured.endswith("; no compared canary above log₂ 5000 = 12.29 bits, where extrapolation is needed")
    h = study.headline(fake_result())["extrapolation"]
    assert h["line_bits"] == pytest.approx(math.log2(5000)) and (h["canaries_above"], h["canaries_below"]) == (1, 10)
    assert h["max_error_above"] == pytest.approx(0.3) and h["max_error_below"] == pytest.approx(0.3)
    assert math.isnan(study.headline(low)["extrapolation"]["max_error_above"])


def test_control_and_extrapolation_say_no_for_a_model_that_learned_nothing():
    # a smoke run's picture: the model did not learn, so every canary — the control too — stays low and the
    # candidates' log-perplexities are near uniform, which the skew-normal fits; neither shows anything
    r = fake_result()
    r.models.loc[r.models.model == "non-private", "unigram_loss"] = 2.4
    c = {x.id: x for x in study.seed_claims(r)}
    for k in ("control_stays_low", "extrapolation_matches_exact"):
        assert c[k].reproduced is False
        assert c[k].measured.endswith("; the model did not learn: valid loss 2.3 vs unigram 2.4 bits/char")
    good = {x.id: x for x in study.seed_claims(fake_result())}
    assert good["control_stays_low"].reproduced and good["extrapolation_matches_exact"].reproduced


# ----------------------------------------------------------------------------- seeds

@pytest.mark.parametrize("seeds, says", [
    ((), "it is empty"),
    ((0, 0), "a seed repeats"),
    ((0, "1"), "not every seed is a non-negative integer"),
    ((0, 1.5), "not every seed is a non-negative integer"),
    ((-1,), "not every seed is a non-negative integer"),
    ((True,), "not every seed is a non-negative integer"),
    (3, "it is not a list"),
])
def test_bad_seeds_are_refused_naming_the_list_and_what_is_allowed(seeds, says):
    with pytest.raises(ValueError) as e:
        study.Config(seeds=seeds)
    assert str(e.value).startswith(f"seeds={seeds!r} is not allowed; use a non-empty list of distinct non-negative")
    assert str(e.value).endswith(says) or f": {says}," in str(e.value)


def test_old_name_seed_is_an_alias_for_one_seed_with_a_warning():
    with pytest.warns(UserWarning, match=r"'seed' is now called 'seeds' \(a list of seeds\); seed=3 runs seeds=\[3\]"):
        cfg = study.Config.from_dict({"seed": 3})
    assert cfg.seeds == (3,)
    with pytest.raises(TypeError, match="both given"):
        study.Config.from_dict({"seed": 3, "seeds": [3]})
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"seeds=\[-1\] is not allowed"):
        study.Config.from_dict({"seed": -1})
    from memlib.runner import registry  # a profile or `-p seed 2` still written with the old name

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert registry.study_params("exposure", "smoke", None, {"seed": 2})["seeds"] == [2]


def test_a_claim_holds_only_when_it_holds_in_every_seed():
    # seeds 0 and 1 show everything; in seed 7 the private model still exposes a canary (11 bits ≥ 9.97)
    r = stacked(fake_result(seed=0), fake_result(seed=1), fake_result(dp_final=11.0, seed=7))
    c = {x.id: x for x in study.claims(r)}
    dp = c["dp_sgd_removes_exposure"]
    assert dp.reproduced is False
    assert dp.measured.endswith("; held in 2/3 seeds: not reproduced (the verdict needs every seed)")
    one = {x.id: x for x in study.seed_claims(r, 7)}["dp_sgd_removes_exposure"]
    assert one.reproduced is False and one.measured.startswith("DP σ=1 (ε = 4 at δ = 1e-05): max inserted 11 bits")
    assert dp.measured.startswith("seed 0: DP σ=1") and f" | seed 7: {one.measured}; held in 2/3" in dp.measured
    assert dp.statement == one.statement
    for k, x in c.items():
        if k != "dp_sgd_removes_exposure":
            assert x.reproduced is True and x.measured.endswith("; held in 3/3 seeds: reproduced (the verdict needs "
                                                                 "every seed)")
    bad = stacked(fake_result(dp_final=11.0, seed=0), fake_result(dp_final=11.0, seed=1), fake_result(seed=2))
    assert {x.id: x for x in study.claims(bad)}["dp_sgd_removes_exposure"].measured.endswith(
        "; held in 1/3 seeds: not reproduced (the verdict needs every seed)")


def test_one_seed_gives_todays_claims_with_the_seed_count_added():
    for r in (fake_result(seed=7), fake_result(dp_final=11.0, seed=7)):
        for mine, alone in zip(study.claims(r), study.seed_claims(r)):
            assert (mine.id, mine.statement, mine.reproduced) == (alone.id, alone.statement, alone.reproduced)
            assert mine.measured == (f"{alone.measured}; held in {int(alone.reproduced)}/1 seeds: "
                                     f"{'reproduced' if alone.reproduced else 'not reproduced'} (the verdict needs "
                                     "every seed)")


def test_claims_of_different_kinds_cannot_be_combined():
    a, b = study.seed_claims(fake_result())[:2]
    with pytest.raises(ValueError, match="per_seed"):
        study.across_seeds({0: a, 1: b})


def test_headline_and_table_give_every_seed_then_mean_and_spread():
    r = stacked(fake_result(seed=0), fake_result(dp_final=3.5, seed=4))
    h = study.headline(r)
    assert h["seeds"] == [0, 4]
    dp = h["final"]["DP σ=1"]["n=16"]["exposure"]
    assert dp["per_seed"] == [1.5, 3.5] and dp["mean"] == pytest.approx(2.5) and dp["sd"] == pytest.approx(1.0)
    assert h["models"]["DP σ=1"]["epsilon"] == {"mean": 4.0, "sd": 0.0, "per_seed": [4.0, 4.0]}
    assert h["extrapolation"]["canaries_above"] == 2  # the n=8 canary of each seed
    t = study.exposure_table(r)
    assert list(t.columns) == [(k, c) for k in ("exact", "skew-normal") for c in ("seed 0", "seed 4", "mean", "sd")]
    assert t.loc[("DP σ=1", "control"), ("exact", "mean")] == pytest.approx(2.5)
    assert list(study.exposure_table(fake_result()).columns) == [("exact", "seed 0"), ("skew-normal", "seed 0")]
    assert study.by_insertions(r, "DP σ=1").loc[16] == pytest.approx(2.5)
    assert study.by_insertions(r, "DP σ=1", seed=4).loc[16] == pytest.approx(3.5)
    assert study.curve(r, "DP σ=1", seed=4).equals(study.curve(fake_result(dp_final=3.5, seed=4), "DP σ=1"))


def test_figures_draw_one_or_several_seeds():
    import matplotlib.pyplot as plt

    r = stacked(fake_result(seed=0), fake_result(dp_final=3.5, seed=4))
    assert study.plot_exposure_over_training(r, seed=4).axes[0].get_title() == ("Exposure over training "
                                                                               "(non-private, seed 4)")
    assert study.plot_skewnorm_fit(r, "DP σ=1").axes[0].get_title() == "Candidate log-perplexities (DP σ=1, seed 0)"
    labels = study.plot_exposure_vs_insertions(r).axes[0].get_legend_handles_labels()[1]
    assert "non-private (exact, mean of 2 seeds)" in labels and "DP σ=1 (exact, each seed)" in labels
    assert study.plot_skewnorm_fit(fake_result()).axes[0].get_title() == "Candidate log-perplexities (non-private)"
    plt.close("all")


TINY = dict(digits=3, hidden=16, embed=8, epochs=1, measure_fractions=(0.5,), noise_multipliers=(1.0,), dp_epochs=1,
            n_samples=100)


@pytest.fixture
def fox(tmp_path) -> str:
    """A corpus with no digit in it (no canary draw is ever refused), 4,400 characters on 100 lines."""
    p = tmp_path / "fox.txt"
    p.write_text("the quick brown fox jumps over the lazy dog\n" * 100)
    return str(p)


def test_each_seed_draws_its_own_canaries_and_adding_a_seed_computes_only_it(fox, isolated_build):
    first = study.run(study.Config(corpus_path=fox, seeds=(1,), **TINY), progress=False)
    r = study.run(study.Config(corpus_path=fox, seeds=(0, 1), **TINY), progress=False)
    a, b = study.seed_result(r, 0), study.seed_result(r, 1)
    # the draws of the study before seeds came in (one `seed`), on this corpus: the canary and insert streams
    assert a.canaries.secret.tolist() == ["668", "541", "206", "482", "441", "768"]
    assert b.canaries.secret.tolist() == ["787", "226", "002", "605", "834", "152"]  # "002" from the cache too
    assert a.arrays["insertion_points"][0, :6].tolist() == [44, 88, 176, 220, 616, 748]
    assert b.arrays["insertion_points"][0, :6].tolist() == [44, 264, 352, 440, 528, 572]
    assert not set(a.canaries.secret) & set(b.canaries.secret)
    assert not np.array_equal(a.arrays["sample_index"], b.arrays["sample_index"])
    assert not np.allclose(a.final.px, b.final.px)  # other weights, batches and DP noise as well
    assert not np.allclose(a.models.valid_loss, b.models.valid_loss)
    assert r.arrays["sample_px"].shape == (2, 2, 100) and r.arrays["seeds"].tolist() == [0, 1]
    assert r.arrays["insertion_points"].shape == r.arrays["insertion_canary"].shape == (2, 31)
    assert r.canaries.seed.tolist() == [0] * 6 + [1] * 6
    # seed 1 came from the cache of the one-seed run: only seed 0 was computed
    assert first.meta["cache"]["hit"] is False and r.meta["cache"]["hit"] is False
    assert {s: c["hit"] for s, c in r.meta["cache"]["seeds"].items()} == {"0": False, "1": True}
    assert r.meta["cache"]["seeds"]["1"]["key"] == first.meta["cache"]["key"]
    pd.testing.assert_frame_equal(b.final, first.final, check_dtype=False)
    again = study.run(study.Config(corpus_path=fox, seeds=(1, 0), **TINY), progress=False)
    assert again.meta["cache"]["hit"] is True and again.canaries.seed.tolist() == [1] * 6 + [0] * 6


def test_one_seed_of_several_equals_the_run_of_that_seed_alone(fox):
    both = study.run(study.Config(corpus_path=fox, seeds=(5, 2), **TINY), progress=False, use_cache=False)
    alone = study.run(study.Config(corpus_path=fox, seeds=(2,), **TINY), progress=False, use_cache=False)
    part = study.seed_result(both, 2)
    for name in ("canaries", "history", "exposures", "final", "models"):
        pd.testing.assert_frame_equal(getattr(part, name), getattr(alone, name))
    assert part.arrays.keys() == alone.arrays.keys()
    for k in alone.arrays:
        np.testing.assert_array_equal(part.arrays[k], alone.arrays[k])
    assert study.seed_claims(both, 2) == study.seed_claims(alone)
    assert [c.reproduced for c in study.claims(both)] == [
        a.reproduced and b.reproduced for a, b in zip(study.seed_claims(both, 5), study.seed_claims(both, 2))]


def test_models_trained_in_worker_processes_equal_those_trained_here(fox, here_and_in_workers):
    cfg = study.Config(corpus_path=fox, seeds=(0, 3), **TINY)
    here, there = here_and_in_workers(lambda workers: study.run(cfg, progress=False, use_cache=False,
                                                                workers=workers))
    for name in ("canaries", "history", "exposures", "final", "models"):
        pd.testing.assert_frame_equal(getattr(there, name), getattr(here, name))
    for k in here.arrays:
        np.testing.assert_array_equal(there.arrays[k], here.arrays[k])
