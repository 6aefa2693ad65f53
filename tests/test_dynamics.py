"""memlib.methods.dynamics (Toneva et al. 2019; Pleiss et al. 2020; Swayamdipta et al. 2020): forgetting events,
AUM and dataset-map coordinates against hand-worked records and brute-force loops, and bad input refused."""
import numpy as np
import pytest

from memlib.methods import dynamics as Dy


def test_forgetting_events_by_hand():
    # 5 measurements, one run, 4 examples
    c = np.array([[0, 1, 1, 0],
                  [1, 0, 1, 0],
                  [0, 1, 1, 0],
                  [1, 1, 1, 0],
                  [0, 1, 0, 0]], dtype=bool)
    # ex 0: 1→0 at t=1→2 and t=3→4: 2 events; ex 1: 1→0 at 0→1: 1; ex 2: 1→0 at 3→4: 1; ex 3: never learned: inf
    np.testing.assert_array_equal(Dy.forgetting_events(c), [2, 1, 1, np.inf])
    np.testing.assert_array_equal(Dy.unforgettable(c), [False, False, False, False])
    # summed over two runs; an example never learned in one run is inf
    c2 = np.stack([c, np.ones_like(c)], axis=1)
    np.testing.assert_array_equal(Dy.forgetting_events(c2), [2, 1, 1, np.inf])
    c3 = np.stack([np.ones_like(c), np.ones_like(c)], axis=1)
    np.testing.assert_array_equal(Dy.unforgettable(c3), [True] * 4)


def test_forgetting_events_equal_a_loop():
    c = np.random.default_rng(0).random((9, 3, 20)) < 0.7
    want = []
    for i in range(20):
        total = 0.0
        for r in range(3):
            if not c[:, r, i].any():
                total = np.inf
                break
            total += sum(1 for t in range(8) if c[t, r, i] and not c[t + 1, r, i])
        want.append(total)
    np.testing.assert_array_equal(Dy.forgetting_events(c), want)


def test_margins_and_aum_equal_loops():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, 2, 6, 3))  # (T, R, n, C)
    y = np.array([0, 1, 2, 2, 1, 0])
    m = Dy.margins(z, y)
    for t in range(4):
        for r in range(2):
            for i in range(6):
                assert m[t, r, i] == pytest.approx(z[t, r, i, y[i]] - max(z[t, r, i, c] for c in range(3) if c != y[i]))
    np.testing.assert_allclose(Dy.aum(m), [np.mean(m[:, :, i]) for i in range(6)])
    assert Dy.aum(m[:, 0]).shape == (6,)  # (T, n): one run
    np.testing.assert_array_equal(Dy.margins(z, np.broadcast_to(y, (4, 2, 6)).copy()), m)  # labels per entry


def test_datamap_by_hand():
    p = np.array([[0.2, 0.9], [0.6, 0.9], [1.0, 0.9]])  # (T=3, n=2)
    correct = p > 0.5
    d = Dy.datamap(p, correct)
    np.testing.assert_allclose(d["confidence"], [0.6, 0.9])
    np.testing.assert_allclose(d["variability"], [np.sqrt((0.16 + 0 + 0.16) / 3), 0.0], atol=1e-12)
    np.testing.assert_allclose(d["correctness"], [2 / 3, 1.0])


@pytest.mark.parametrize("call, name", [
    (lambda: Dy.forgetting_events(np.full((3, 4), 2)), "correct"),
    (lambda: Dy.forgetting_events(np.zeros(4, dtype=bool)), "correct"),
    (lambda: Dy.margins(np.zeros((3, 1)), np.array([0, 0, 0])), "logits"),
    (lambda: Dy.margins(np.zeros((3, 2)), np.array([0, 2, 0])), "labels"),
    (lambda: Dy.datamap(np.full((2, 3), 1.5)), "p_true"),
    (lambda: Dy.datamap(np.full((2, 3), 0.5), np.ones((2, 4), dtype=bool)), "correct"),
])
def test_bad_input_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=f"^{name}="):
        call()
