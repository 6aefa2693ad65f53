"""memlib.methods.exposure against independent oracles: every candidate scored by one plain forward pass of the whole
sequence (no state carried), a model whose output distribution is fixed by hand, closed-form ranks, and samples of a
known skew-normal compared with its true CDF."""
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from memlib.methods import exposure as E
from memlib.models import CharLSTM

V = 23  # vocabulary of the test models


def lstm(layers=1, seed=0, hidden=24, dropout=0.0):
    torch.manual_seed(seed)
    m = CharLSTM(V, embed=8, hidden=hidden, layers=layers, dropout=dropout)
    with torch.no_grad():  # larger weights than the default init: sharper, more varied distributions
        for p in m.parameters():
            p.mul_(3.0)
    return m.eval()


def oracle(model, context, alphabet, d):
    """Px in bits of every candidate ``context + secret`` (secrets from itertools.product = index order), each full
    sequence scored by ONE plain forward pass and a float64 log-softmax; no state carried, no memlib code."""
    context, alphabet = list(context), list(alphabet)
    full = torch.tensor([context + [alphabet[k] for k in digits]
                         for digits in itertools.product(range(len(alphabet)), repeat=d)])
    m = len(context)
    with torch.no_grad():
        logp = torch.log_softmax(model(full).double(), dim=-1)  # position t predicts full[:, t + 1]
    picked = logp[:, m - 1:m - 1 + d].gather(-1, full[:, m:, None]).squeeze(-1)
    return (-picked.sum(1) / math.log(2)).numpy()


CONTEXT = [3, 17, 5, 9, 0, 12]   # a multi-id context
DIGITS = list(range(10, 20))     # A = 10
ODD = [21, 2, 7]                 # A = 3, unsorted ids


# ----------------------------------------------------------------------------- trie and brute force vs the oracle

@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("alphabet, d", [(DIGITS, 1), (DIGITS, 2), (DIGITS, 3), (ODD, 1), (ODD, 2), (ODD, 4)])
def test_trie_and_brute_force_equal_one_plain_forward_pass_per_candidate(layers, alphabet, d):
    model = lstm(layers, seed=layers * 10 + d)
    want = oracle(model, CONTEXT, alphabet, d)
    assert want.std() > 0.1  # the candidates differ: the test can see a wrong order or a wrong symbol
    trie = E.trie_log_perplexities(model, CONTEXT, alphabet, d)
    brute = E.brute_force_log_perplexities(model, CONTEXT, alphabet, d, batch_size=50)
    assert trie.dtype == np.float64 and trie.shape == (len(alphabet) ** d,)
    np.testing.assert_allclose(trie, want, rtol=0, atol=1e-4)
    np.testing.assert_allclose(brute, want, rtol=0, atol=1e-4)


def test_stream_in_small_batches_equals_the_big_batch_and_tiles_the_index_range():
    model = lstm(2, seed=3)
    big = E.trie_log_perplexities(model, CONTEXT, DIGITS, 3, batch_size=100000)
    blocks = list(E.iter_trie_log_perplexities(model, CONTEXT, DIGITS, 3, batch_size=7))
    starts = [s for s, _ in blocks]
    assert starts[0] == 0 and all(b - a == len(v) for (a, v), b in zip(blocks, starts[1:]))
    assert starts[-1] + len(blocks[-1][1]) == 1000 and len(blocks) >= 1000 // 70  # many chunks per level
    assert max(len(v) for _, v in blocks) <= 7 * 10
    np.testing.assert_allclose(np.concatenate([v for _, v in blocks]), big, rtol=0, atol=1e-5)
    np.testing.assert_allclose(E.trie_log_perplexities(model, CONTEXT, ODD, 4, batch_size=7),
                               oracle(model, CONTEXT, ODD, 4), rtol=0, atol=1e-4)


def test_trie_ranks_count_the_full_array():
    model = lstm(1, seed=4)
    px = oracle(model, CONTEXT, DIGITS, 3)
    t = np.array([px.min() - 1, px.min() + 1e-3, np.median(px), np.sort(px)[17] + 1e-3, px.max() + 1])
    want = np.array([(px <= x).sum() for x in t])
    assert want[0] == 0 and want[-1] == 1000
    np.testing.assert_array_equal(E.trie_ranks(model, CONTEXT, DIGITS, 3, t, batch_size=7), want)
    assert E.trie_ranks(model, CONTEXT, DIGITS, 3, float(t[2])) == want[2]


def test_trie_canary_ranks_count_the_canary_itself_and_its_ties():
    model = lstm(2, seed=5)
    px = oracle(model, CONTEXT, ODD, 4)
    canaries = [int(px.argmin()), int(px.argmax()), 40]
    rank, value = E.trie_canary_ranks(model, CONTEXT, ODD, 4, canaries, batch_size=7)
    np.testing.assert_allclose(value, px[canaries], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(rank, [1, 81, (px <= px[40]).sum()])


def test_brute_force_on_given_indices_in_their_order():
    model = lstm(1, seed=6)
    px = oracle(model, CONTEXT, DIGITS, 3)
    idx = [999, 0, 281, 281, 5]
    np.testing.assert_allclose(E.brute_force_log_perplexities(model, CONTEXT, DIGITS, 3, indices=idx, batch_size=2),
                               px[idx], rtol=0, atol=1e-4)
    np.testing.assert_allclose(E.brute_force_log_perplexities(model, CONTEXT, DIGITS, 3, indices=torch.tensor(idx)),
                               px[idx], rtol=0, atol=1e-4)


def test_scoring_is_in_eval_mode_and_restores_the_mode():
    model = lstm(2, seed=7, dropout=0.5)
    want = oracle(model.eval(), CONTEXT, ODD, 2)
    model.train()
    for got in (E.trie_log_perplexities(model, CONTEXT, ODD, 2),
                np.concatenate([v for _, v in E.iter_trie_log_perplexities(model, CONTEXT, ODD, 2, batch_size=2)]),
                E.brute_force_log_perplexities(model, CONTEXT, ODD, 2)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)  # dropout off: deterministic
        assert model.training
    assert torch.is_grad_enabled()
    stream = E.iter_trie_log_perplexities(model, CONTEXT, ODD, 3, batch_size=2)
    next(stream)
    assert model.training and torch.is_grad_enabled()  # nothing leaks to the consumer between blocks
    stream.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_equals_the_cpu_oracle():
    model = lstm(2, seed=8)
    want = oracle(model, CONTEXT, DIGITS, 3)
    cuda = model.to("cuda")
    np.testing.assert_allclose(E.trie_log_perplexities(cuda, CONTEXT, DIGITS, 3, batch_size=64), want,
                               atol=1e-3, rtol=0)
    np.testing.assert_allclose(E.brute_force_log_perplexities(cuda, CONTEXT, DIGITS, 3), want, atol=1e-3, rtol=0)
    ranks, _ = E.trie_canary_ranks(cuda, CONTEXT, DIGITS, 3, [int(want.argmin())])
    assert ranks.tolist() == [1]


# ----------------------------------------------------------------------------- log-perplexity by hand

def fixed_distribution_model():
    """A CharLSTM whose next-id distribution is always p = (1/2, 1/4, 1/8, 1/16, 1/16): zero LSTM and output weights,
    output bias log p. Then −log₂ p = (1, 2, 3, 4, 4) bits."""
    m = CharLSTM(5, embed=4, hidden=6, layers=2)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.zero_() if not name.startswith("embed") else p.normal_()
        m.out.bias.copy_(torch.log(torch.tensor([1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 16])))
    return m


def test_log_perplexity_equals_the_hand_computation():
    m = fixed_distribution_model()
    ids = torch.tensor([[0, 1, 2], [4, 4, 4], [0, 0, 3]])
    np.testing.assert_allclose(E.log_perplexity(m, ids, [3, 1]), [6.0, 12.0, 6.0], rtol=0, atol=1e-5)
    np.testing.assert_allclose(E.log_perplexity(m, ids, [2], batch_size=1), [6.0, 12.0, 6.0], rtol=0, atol=1e-5)
    single = E.log_perplexity(m, [2, 1], [0])
    assert isinstance(single, float) and single == pytest.approx(5.0, abs=1e-5)
    # n ids of one symbol: n·(−log₂ p)
    assert E.log_perplexity(m, [1] * 7, [0]) == pytest.approx(7 * 2.0, abs=1e-5)
    # the trie on the same model: Px(r) = Σ_k bits(digit_k) over the alphabet [0, 3] (1 and 4 bits)
    px = E.trie_log_perplexities(m, [2], [0, 3], 3)
    np.testing.assert_allclose(px, [3, 6, 6, 9, 6, 9, 9, 12], rtol=0, atol=1e-5)
    # (float32 logits: 3 bits comes out as 3 ± 1e-6, so the thresholds sit 1e-4 above the ties)
    assert E.trie_ranks(m, [2], [0, 3], 3, np.array([3, 6, 9, 2.5]) + 1e-4).tolist() == [1, 4, 7, 0]
    # exact ties are ties of the computed floats: the three 6-bit candidates differ in their last bits
    rank, value = E.trie_canary_ranks(m, [2], [0, 3], 3, [0, 1, 7])
    assert rank.tolist() == [1, (px <= px[1]).sum(), 8] and 2 <= rank[1] <= 4
    assert value == pytest.approx([3, 6, 12], abs=1e-5)


def test_log_perplexity_matches_the_oracle_on_a_random_model():
    model = lstm(2, seed=9)
    px = oracle(model, CONTEXT, DIGITS, 2)
    ids = torch.tensor([[DIGITS[a], DIGITS[b]] for a in range(10) for b in range(10)])
    np.testing.assert_allclose(E.log_perplexity(model, ids, CONTEXT, batch_size=13), px, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- candidates

def test_candidate_symbols_are_base_a_digits_most_significant_first():
    assert E.candidate_symbols([281265], 6, 10).tolist() == [[2, 8, 1, 2, 6, 5]]
    assert E.candidate_symbols(torch.tensor([0, 5, 26]), 3, 3).tolist() == [[0, 0, 0], [0, 1, 2], [2, 2, 2]]
    got = E.candidate_symbols(torch.arange(27), 3, 3).tolist()
    assert got == [list(t) for t in itertools.product(range(3), repeat=3)]  # index order = lexicographic order


def test_sample_candidates_is_seeded_uniform_with_replacement_and_excludes():
    g = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    a, b = E.sample_candidates(g(), 3, 2, 8000), E.sample_candidates(g(), 3, 2, 8000)
    assert torch.equal(a, b) and a.dtype == torch.int64 and int(a.min()) >= 0 and int(a.max()) <= 7
    counts = torch.bincount(a, minlength=8).numpy()
    assert np.all(np.abs(counts - 1000) < 5 * math.sqrt(8000 * (1 / 8) * (7 / 8)))
    small = E.sample_candidates(g(), 1, 3, 50)
    assert len(torch.unique(small)) < len(small)  # with replacement: repeats in 50 draws from 3
    ex = E.sample_candidates(g(), 2, 10, 5000, exclude=[3, 50, 99])
    assert not torch.isin(ex, torch.tensor([3, 50, 99])).any() and len(torch.unique(ex)) == 97
    assert not torch.equal(E.sample_candidates(torch.Generator().manual_seed(12), 3, 2, 8000), a)


# ----------------------------------------------------------------------------- ranks and exposure: closed forms

VALUES = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 2.0, 4.0, 6.0])  # sorted: 1 2 2 2 3 4 5 6


def test_ranks_and_exposure_on_a_fixture():
    n = len(VALUES)
    assert E.ranks(VALUES, 1.0) == 1 and E.exposure(1, n) == pytest.approx(3.0)      # smallest: log₂ 8
    assert E.ranks(VALUES, 6.0) == 8 and E.exposure(8, n) == 0.0                     # largest: 0
    assert E.ranks(VALUES, 2.0) == 4                                                 # 3 tied at 2 all count
    assert E.ranks(VALUES, [3.0, 4.0, 5.0]).tolist() == [5, 6, 7]
    assert E.exposure(np.array([2, 4]), n).tolist() == pytest.approx([2.0, 1.0])
    assert E.rank_of(VALUES, [0.5, 2.5, 100.0]).tolist() == [0, 4, 8]               # below all / beyond last
    assert E.rank_of(np.sort(VALUES), 4.0, is_sorted=True) == 6
    assert E.exposure(1, 10**9) == pytest.approx(9 * math.log2(10))
    assert E.exposure(3, 10) == pytest.approx(math.log2(10 / 3))


def test_sampled_exposure_ties_go_to_the_references():
    ref = [1.0, 2.0, 2.0, 3.0]  # log₂ 4 = 2
    assert E.sampled_exposure(ref, 0.5) == pytest.approx(2.0)                      # rank 1
    assert E.sampled_exposure(ref, 2.0) == pytest.approx(0.0)                      # rank 1 + 3
    e = E.sampled_exposure(ref, [1.5, 10.0])
    assert e.tolist() == pytest.approx([1.0, 2 - math.log2(5)])                    # ranks 2, 5


# ----------------------------------------------------------------------------- skew-normal extrapolation

TRUE = stats.skewnorm(-3.0, 30.0, 5.0)  # left tail (small Px = likely canaries) is the long one


def test_skewnorm_extrapolation_matches_the_true_cdf_in_the_tail():
    """20,000 seeded samples of a known skew-normal; at points of true exposure 2 … 20 bits the extrapolated
    exposure is within 5 % of the true one (at least 0.1 bit). Why 5 %: the fitted parameters err by ~1/√n, which
    shifts the log-tail roughly in proportion to its depth; over 12 seeds the largest error was 2.1 %, 2.6 %, 2.8 %
    and 3.0 % of the exposure at 5, 10, 15 and 20 bits (0.10, 0.26, 0.43, 0.60 bits)."""
    sample = TRUE.rvs(20000, random_state=np.random.default_rng(0))
    fit = E.skewnorm_fit(sample)
    assert isinstance(fit, E.SkewNormal) and fit.a < 0
    bits = np.array([2.0, 5.0, 10.0, 15.0, 20.0])
    x = TRUE.ppf(2.0 ** -bits)
    np.testing.assert_allclose(-TRUE.logcdf(x) / math.log(2), bits, rtol=1e-6)  # the points are where we say
    got = E.skewnorm_exposure(fit, x)
    assert np.all(np.abs(got - bits) <= np.maximum(0.1, 0.05 * bits)), got - bits
    assert E.skewnorm_exposure(sample, float(x[2])) == pytest.approx(got[2])     # the sample is fitted there
    assert E.skewnorm_exposure(fit, -1e6) == math.inf                           # log-CDF underflows: +inf
    assert E.skewnorm_exposure(fit, 1e6) == pytest.approx(0.0, abs=1e-12)


def test_sampled_exposure_matches_the_true_cdf_where_the_sample_resolves_it():
    """At 2, 5, 8 bits 20,000 references hold ≈ 5000, 625, 78 values below the point; log₂ of a binomial count has
    a standard error ≈ 1/(ln 2 · √count): allow 4 of them plus 0.05 bit for the +1 of the rank."""
    n = 20000
    sample = TRUE.rvs(n, random_state=np.random.default_rng(1))
    bits = np.array([2.0, 5.0, 8.0])
    got = E.sampled_exposure(sample, TRUE.ppf(2.0 ** -bits))
    tol = 4 / (math.log(2) * np.sqrt(n * 2.0 ** -bits)) + 0.05
    assert np.all(np.abs(got - bits) <= tol), (got - bits, tol)


# ----------------------------------------------------------------------------- bad input

def test_bad_input_names_the_parameter():
    model = lstm(1)
    cases = [
        (lambda: E.trie_log_perplexities(model, CONTEXT, DIGITS, 0), "d=0"),
        (lambda: E.trie_log_perplexities(model, CONTEXT, [], 2), "alphabet"),
        (lambda: E.trie_log_perplexities(model, CONTEXT, [4], 2), "alphabet"),
        (lambda: E.trie_log_perplexities(model, CONTEXT, [4, 5, 4], 2), "alphabet"),
        (lambda: E.trie_log_perplexities(model, [], DIGITS, 2), "context"),
        (lambda: E.trie_log_perplexities(model, CONTEXT, DIGITS, 2, batch_size=0), "batch_size=0"),
        (lambda: list(E.iter_trie_log_perplexities(model, CONTEXT, DIGITS, 2, batch_size=0)), "batch_size=0"),
        (lambda: E.trie_ranks(model, CONTEXT, DIGITS, 2, [1.0, float("nan")]), "thresholds"),
        (lambda: E.trie_canary_ranks(model, CONTEXT, DIGITS, 2, [100]), "indices"),
        (lambda: E.trie_log_perplexities(model, CONTEXT, DIGITS, 9), "iter_trie_log_perplexities"),
        (lambda: E.brute_force_log_perplexities(model, CONTEXT, DIGITS, 9), "MAX_FULL_CANDIDATES"),
        (lambda: E.brute_force_log_perplexities(model, [], DIGITS, 2), "context"),
        (lambda: E.brute_force_log_perplexities(model, CONTEXT, DIGITS, 2, indices=[-1]), "indices"),
        (lambda: E.log_perplexity(model, [1, 2], []), "context"),
        (lambda: E.log_perplexity(model, [1, 2], [1], batch_size=-3), "batch_size=-3"),
        (lambda: E.candidate_symbols([8], 3, 2), "indices"),
        (lambda: E.candidate_symbols([0], 0, 10), "d=0"),
        (lambda: E.sample_candidates(torch.Generator(), 0, 10, 5), "d=0"),
        (lambda: E.sample_candidates(torch.Generator(), 1, 2, 5, exclude=[0, 1]), "exclude"),
        (lambda: E.exposure(0, 10), "rank=0"),
        (lambda: E.exposure(11, 10), "rank=11"),
        (lambda: E.exposure([1, 2.5], 10), "rank"),
        (lambda: E.exposure(1, 0), "space_size=0"),
        (lambda: E.ranks(VALUES, 0.5), "canary_px"),
        (lambda: E.rank_of([1.0, float("nan")], 1.0), "values"),
        (lambda: E.sampled_exposure([1.0, float("nan")], 1.0), "reference_px"),
        (lambda: E.sampled_exposure([1.0, 2.0], float("nan")), "canary_px"),
        (lambda: E.skewnorm_fit(np.arange(5.0)), "sample_px"),
        (lambda: E.skewnorm_fit(np.r_[np.arange(30.0), np.nan]), "sample_px"),
        (lambda: E.skewnorm_fit(np.r_[np.arange(30.0), np.inf]), "sample_px"),
        (lambda: E.skewnorm_exposure(E.SkewNormal(1.0, 0.0, 1.0), float("nan")), "canary_px"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name.replace("[", r"\[")):
            call()
