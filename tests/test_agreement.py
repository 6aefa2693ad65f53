"""memlib.methods.agreement (Hacohen et al. 2020): TP-agreement, accessibility, the band share, the binomial table
and the split-half / across correlations on hand-made correctness arrays — values worked out by hand, brute-force
loops, math.comb and scipy as oracles — and bad input refused before any work."""
import itertools
import math

import numpy as np
import pytest
import scipy.stats

from memlib.methods import agreement as A

# 3 epochs (0 = untrained), 4 networks, 3 examples
HAND = np.array([
    [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
    [[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]],
    [[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 1]],
], dtype=bool)
BAND = (0.2, 0.8)


def test_tp_agreement_and_accessibility_by_hand():
    tpa = A.tp_agreement(HAND)
    assert tpa.shape == (3, 3)
    np.testing.assert_allclose(tpa, [[0, 0, 0], [1, 0.25, 0], [1, 0.5, 0.25]])
    np.testing.assert_allclose(A.tp_agreement(HAND[2]), [1, 0.5, 0.25])  # one epoch: (networks, examples)
    np.testing.assert_allclose(A.tp_agreement(HAND.astype(int)), tpa)  # 0/1 integers are accepted
    # accessibility over epochs 1 and 2: (1 + 1)/2, (0.25 + 0.5)/2, (0 + 0.25)/2
    np.testing.assert_allclose(A.accessibility(HAND[1:]), [1.0, 0.375, 0.125])
    np.testing.assert_allclose(A.band_share(A.tp_agreement(HAND), *BAND), [0, 1 / 3, 2 / 3])


def test_accessibility_and_band_share_equal_brute_force_loops():
    c = np.random.default_rng(3).random((6, 7, 11)) < 0.6
    brute = [sum(sum(int(c[t, n, x]) for n in range(7)) / 7 for t in range(6)) / 6 for x in range(11)]
    np.testing.assert_allclose(A.accessibility(c), brute)
    tpa = A.tp_agreement(c)
    for lo, hi in ((0.2, 0.8), (0.0, 1.0), (1 / 7, 6 / 7)):  # the band is open: 1/7 and 6/7 themselves are out
        brute = [sum(1 for x in range(11) if lo < sum(c[t, :, x]) / 7 < hi) / 11 for t in range(6)]
        np.testing.assert_allclose(A.band_share(tpa, lo, hi), brute)


def test_binomial_table_by_hand():
    t = A.binomial_table(HAND, *BAND, judge_share=0.5)
    assert list(t.epoch) == [0, 1, 2]
    p1 = (1 + 0.25 + 0) / 3
    # N = 4: K/4 strictly inside (0.2, 0.8) means K ∈ {1, 2, 3}
    expected = 1 - (1 - p1) ** 4 - p1 ** 4
    assert t.p_bar[1] == pytest.approx(p1) and t.expected[1] == pytest.approx(expected)
    assert t.observed[1] == pytest.approx(1 / 3) and t.ratio[1] == pytest.approx((1 / 3) / expected)
    assert t.low[1] == pytest.approx(1 / 3) and t.high[1] == pytest.approx(1 / 3)
    # epoch 0 is never judged; epoch 2 (p̄ = 7/12) expects ≥ 0.5 in the band
    p2 = 7 / 12
    assert t.expected[2] == pytest.approx(sum(math.comb(4, k) * p2 ** k * (1 - p2) ** (4 - k) for k in (1, 2, 3)))
    assert list(t.judged) == [False, True, True]
    assert list(A.binomial_table(HAND, *BAND, judge_share=0.9).judged) == [False, False, False]
    # epoch 0: p̄ = 0, nothing expected in the band: the ratio is undefined
    assert t.expected[0] == 0 and math.isnan(t.ratio[0])


def test_binomial_expectation_equals_enumerating_every_outcome():
    """The expected band share of N independent networks right with probability p̄, by summing the probability of
    each of the 2^N right/wrong patterns whose agreement falls in the band."""
    c = np.random.default_rng(5).random((4, 5, 30)) < 0.45
    t = A.binomial_table(c, *BAND, judge_share=0.5)
    for epoch, p in enumerate(t.p_bar):
        brute = sum(p ** sum(w) * (1 - p) ** (5 - sum(w)) for w in itertools.product((0, 1), repeat=5)
                    if BAND[0] < sum(w) / 5 < BAND[1])
        assert t.expected[epoch] == pytest.approx(brute, rel=1e-12)


def test_split_half_and_cross_correlations():
    # examples learned at epochs 1 … 5 by every network: perfect agreement, order 0 < 1 < … < 4
    learn = np.array([3, 1, 5, 2, 4])
    epochs = np.arange(1, 6)[:, None, None]
    same = np.broadcast_to(epochs >= learn[None, None, :], (5, 4, 5))
    assert A.split_half_rho(same) == pytest.approx(1.0)
    # half 2 learns in the reverse order: ρ = −1
    rev = same.copy()
    rev[:, 2:] = epochs >= (6 - learn)[None, None, :]
    assert A.split_half_rho(rev) == pytest.approx(-1.0)
    # across: A as `same`, B learns the same order but two examples swapped — the mean of four equal ρ
    b = np.broadcast_to(epochs >= np.array([3, 1, 5, 4, 2])[None, None, :], (5, 4, 5))
    oracle = scipy.stats.spearmanr(-learn, -np.array([3, 1, 5, 4, 2])).statistic
    assert A.cross_rho(same, b) == pytest.approx(oracle)
    # every example equally accessible: ρ undefined → NaN
    assert math.isnan(A.split_half_rho(np.ones((2, 4, 5), dtype=bool)))
    # odd N: the last network is left out, halves of equal size
    h1, h2 = A.split_halves(5)
    assert list(h1) == [0, 1] and list(h2) == [2, 3]


def test_split_half_and_cross_rho_equal_scipy_on_loop_accessibility():
    rng = np.random.default_rng(11)
    a, b = rng.random((4, 7, 40)) < 0.5, rng.random((4, 6, 40)) < 0.6

    def acc(c, nets):  # accessibility of the networks `nets`, by loops
        return [np.mean([np.mean([c[t, n, x] for n in nets]) for t in range(c.shape[0])]) for x in range(c.shape[2])]

    halves_a, halves_b = ([0, 1, 2], [3, 4, 5]), ([0, 1, 2], [3, 4, 5])  # N = 7 leaves network 6 out
    rho = scipy.stats.spearmanr(acc(a, halves_a[0]), acc(a, halves_a[1])).statistic
    assert A.split_half_rho(a) == pytest.approx(rho, rel=1e-12)
    four = [scipy.stats.spearmanr(acc(a, ha), acc(b, hb)).statistic for ha in halves_a for hb in halves_b]
    assert A.cross_rho(a, b) == pytest.approx(np.mean(four), rel=1e-12)


@pytest.mark.parametrize("bad, match", [
    (np.ones((3, 1, 5), dtype=bool), "N ≥ 2"),
    (np.ones((1, 5), dtype=bool), "N ≥ 2"),
    (np.ones(5, dtype=bool), "expected shape"),
    (np.full((2, 3, 4), 2), "0/1"),
])
def test_bad_correctness_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        A.tp_agreement(bad)


def test_other_bad_input_is_refused():
    with pytest.raises(ValueError, match="expected shape"):
        A.accessibility(HAND[1])  # needs an epochs axis
    with pytest.raises(ValueError, match="n_networks"):
        A.split_halves(3)
    with pytest.raises(ValueError, match="n_networks"):
        A.split_halves(True)
    with pytest.raises(ValueError, match="correct_b"):
        A.cross_rho(np.ones((2, 4, 5), bool), np.ones((2, 4, 6), bool))
    with pytest.raises(ValueError, match="hi"):
        A.band_share([0.5], 0.8, 0.2)
    with pytest.raises(ValueError, match="tpa"):
        A.band_share(np.zeros((3, 0)), *BAND)
    with pytest.raises(ValueError, match="expected shape"):
        A.binomial_table(HAND[1], *BAND, judge_share=0.5)
