"""memlib.methods.sensitivity (Arpit et al. 2017 §3.2) against independent oracles: central finite differences and
plain autograd through one SGD step written out with nn.Linear conventions (float64); torch.optim.SGD for the step
and for a whole training run; F.cross_entropy; hand-computed per-class matrices and pooling; bad input refused.
The Gini coefficient is tested in test_stats.py."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from memlib.config import stream
from memlib.methods import sensitivity as S
from memlib.models import build_model
from memlib.train import build_seeded


def mlp_loss(weights, x, y):
    """Independent plain forward: nn.Linear convention (W is out×in), ReLU between layers; CE per example."""
    h = x
    for i, (w, b) in enumerate(weights):
        h = h @ w.T + b
        if i < len(weights) - 1:
            h = torch.relu(h)
    return F.cross_entropy(h, y, reduction="none")


def pairs(flat):
    return [(flat[2 * i], flat[2 * i + 1]) for i in range(len(flat) // 2)]


def loss_terms(per_ex, y_eval, classes_of_terms):
    """The loss terms of L: the total mean CE (classes_of_terms None), or its class terms (1/n) Σ_{y=c} CE."""
    n = len(y_eval)
    if classes_of_terms is None:
        return per_ex.sum().reshape(1) / n
    return torch.stack([per_ex[y_eval == c].sum() / n for c in classes_of_terms])


def sgd_then_loss(weights, xb, yb, x_eval, y_eval, lr, classes_of_terms):
    """Loss terms after one SGD step on (xb, yb), by plain autograd of the first order only (no create_graph)."""
    params = [t.clone().requires_grad_(True) for wb in weights for t in wb]
    loss = mlp_loss(pairs(params), xb, yb).mean()
    grads = torch.autograd.grad(loss, params)
    new = [p.detach() - lr * g for p, g in zip(params, grads)]
    return loss_terms(mlp_loss(pairs(new), x_eval, y_eval), y_eval, classes_of_terms)


def finite_difference(weights, xb, yb, x_eval, y_eval, lr, classes_of_terms, h=1e-6):
    """Central differences of every loss term w.r.t. every coordinate of every batch input (eval set fixed)."""
    r = 1 if classes_of_terms is None else len(classes_of_terms)
    out = torch.zeros(r, *xb.shape, dtype=torch.float64)
    for b in range(xb.shape[0]):
        for d in range(xb.shape[1]):
            plus, minus = xb.clone(), xb.clone()
            plus[b, d] += h
            minus[b, d] -= h
            out[:, b, d] = (sgd_then_loss(weights, plus, yb, x_eval, y_eval, lr, classes_of_terms)
                            - sgd_then_loss(weights, minus, yb, x_eval, y_eval, lr, classes_of_terms)) / (2 * h)
    return out


def unrolled_autograd(weights, xb, yb, x_eval, y_eval, lr, classes_of_terms):
    """∂L_r(θ − lr ∇_θ ℓ(θ, x_b)) / ∂x_b by plain autograd through the step (create_graph), one term r at a time —
    the textbook unrolling, without the batched double backward of the function under test."""
    xb = xb.clone().requires_grad_(True)
    params = [t.clone().requires_grad_(True) for wb in weights for t in wb]
    grads = torch.autograd.grad(mlp_loss(pairs(params), xb, yb).mean(), params, create_graph=True)
    new = [p - lr * g for p, g in zip(params, grads)]
    terms = loss_terms(mlp_loss(pairs(new), x_eval, y_eval), y_eval, classes_of_terms)
    return torch.stack([torch.autograd.grad(t, xb, retain_graph=True)[0] for t in terms])


def tiny_problem(num_classes, seed, n=7, d=3, widths=(4, 3), k=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, n, d, generator=g, dtype=torch.float64)
    y = (torch.randint(0, num_classes, (k, n), generator=g) if num_classes < n
         else torch.arange(n).expand(k, n).contiguous())
    params = S.init_params(d, num_classes, widths, [seed + 1, seed + 2][:k], "cpu", dtype=torch.float64)
    # nudge the weights off PyTorch's init so the check does not depend on it
    params = [p + 0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    idx = torch.stack([torch.randperm(n, generator=g)[:4] for _ in range(k)])
    return x, y, params, idx


def to_linear(params, m):
    """Model m of the stacked params in nn.Linear convention [(W out×in, b), …]."""
    return [(params[2 * i][m].T.contiguous(), params[2 * i + 1][m, 0].contiguous()) for i in range(len(params) // 2)]


# ----------------------------------------------------------------------------- the one-step sensitivity

@pytest.mark.parametrize("per_class", [True, False])
def test_unrolled_sensitivity_matches_finite_differences_and_autograd(per_class):
    num_classes = 3 if per_class else 7  # one class per example: 7 examples, 7 classes
    x, y, params, idx = tiny_problem(num_classes, seed=2)  # a seed whose 4-unit layer is not dead
    lr = 0.5
    rows = torch.arange(x.shape[0])[:, None]
    eval_set = S.EvalSet.build(x, y, num_classes, per_class)
    new, s, loss, acc = S.sgd_step_sensitivity(params, x[rows, idx], y[rows, idx], lr, eval_set)
    assert s.dtype == torch.float64
    assert s.shape == ((num_classes if per_class else 1), x.shape[0], idx.shape[1], x.shape[2])
    terms = list(range(num_classes)) if per_class else None
    for m in range(x.shape[0]):
        w = to_linear(params, m)
        fd = finite_difference(w, x[m, idx[m]].clone(), y[m, idx[m]], x[m], y[m], lr, terms)
        assert torch.allclose(s[:, m], fd, rtol=1e-5, atol=1e-9), (s[:, m] - fd).abs().max()
        assert fd.abs().max() > 1e-4  # the check is not vacuous
        ad = unrolled_autograd(w, x[m, idx[m]], y[m, idx[m]], x[m], y[m], lr, terms)
        assert torch.allclose(s[:, m], ad, rtol=1e-10, atol=1e-13), (s[:, m] - ad).abs().max()
        # the training loss and accuracy after the step
        new_w = to_linear(new, m)
        ref = mlp_loss(new_w, x[m], y[m])
        assert float(loss[m]) == pytest.approx(float(ref.mean()), rel=1e-10)
        h = x[m]
        for i, (wi, bi) in enumerate(new_w):
            h = h @ wi.T + bi
            h = torch.relu(h) if i < len(new_w) - 1 else h
        assert float(acc[m]) == pytest.approx(float((h.argmax(1) == y[m]).double().mean()))


def test_sensitivity_total_is_the_sum_of_class_terms():
    x, y, params, idx = tiny_problem(3, seed=4, k=1)
    lr = 0.3
    eval_set = S.EvalSet.build(x, y, 3, True)
    _, s, _, _ = S.sgd_step_sensitivity(params, x[:, idx[0]], y[:, idx[0]], lr, eval_set)
    w = to_linear(params, 0)
    fd_total = finite_difference(w, x[0, idx[0]].clone(), y[0, idx[0]], x[0], y[0], lr, None)
    assert torch.allclose(s.sum(0)[0], fd_total[0], rtol=1e-5, atol=1e-9)


def test_stats_are_skipped_on_request():
    x, y, params, idx = tiny_problem(3, seed=2, k=1)
    for per_class in (True, False):
        _, _, loss, acc = S.sgd_step_sensitivity(params, x[:, idx[0]], y[:, idx[0]], 0.1,
                                                 S.EvalSet.build(x, y, 3, per_class), stats=False)
        assert loss is None and acc is None


def test_sgd_step_equals_torch_optim_sgd():
    x, y, params, idx = tiny_problem(3, seed=2, k=1)
    lr = 0.1
    rows = torch.arange(1)[:, None]
    new, _, _, _ = S.sgd_step_sensitivity(params, x[rows, idx], y[rows, idx], lr, S.EvalSet.build(x, y, 3, True))
    layers = [torch.nn.Linear(w.shape[1], w.shape[0]).double() for w, _ in to_linear(params, 0)]
    with torch.no_grad():
        for layer, (w, b) in zip(layers, to_linear(params, 0)):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    opt = torch.optim.SGD(net.parameters(), lr=lr)
    F.cross_entropy(net(x[0, idx[0]]), y[0, idx[0]]).backward()
    opt.step()
    for (w, b), layer in zip(to_linear(new, 0), layers):
        assert torch.allclose(w, layer.weight, atol=1e-12) and torch.allclose(b, layer.bias, atol=1e-12)


# ----------------------------------------------------------------------------- the batched MLP

def test_init_params_and_forward_are_the_seeded_memlib_mlps():
    seeds, widths = [3, 8], (5, 4)
    params = S.init_params(6, 3, widths, seeds, "cpu")
    x = torch.randn(2, 9, 6, generator=torch.Generator().manual_seed(0))
    logits = S.forward(params, x)
    assert logits.shape == (2, 9, 3)
    for k, s in enumerate(seeds):
        net = build_seeded(lambda: build_model("mlp", (6,), 3, widths), s)
        with torch.no_grad():
            assert torch.allclose(logits[k], net(x[k]), atol=1e-6)
    assert not torch.allclose(logits[0], logits[1])  # two seeds, two networks


def test_cross_entropy_equals_torch():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(2, 5, 4, generator=g, dtype=torch.float64), torch.randint(0, 4, (2, 5), generator=g)
    ref = F.cross_entropy(logits.reshape(-1, 4), y.reshape(-1), reduction="none").reshape(2, 5)
    assert torch.allclose(S.cross_entropy(logits, y), ref, atol=1e-12)


@pytest.mark.parametrize("per_class", [True, False])
def test_eval_set_gradients_equal_autograd_of_the_loss_terms(per_class):
    num_classes = 3 if per_class else 7
    x, y, params, _ = tiny_problem(num_classes, seed=5)
    v, loss, acc = S.EvalSet.build(x, y, num_classes, per_class).loss_grads(params)
    terms = list(range(num_classes)) if per_class else None
    for m in range(x.shape[0]):
        flat = [t.clone().requires_grad_(True) for wb in to_linear(params, m) for t in wb]
        per_ex = mlp_loss(pairs(flat), x[m], y[m])
        for r, term in enumerate(loss_terms(per_ex, y[m], terms)):
            ref = torch.autograd.grad(term, flat, retain_graph=True)
            got = to_linear([g[r] for g in v], m)  # v is (R, K, *shape) per parameter
            for (gw, gb), (rw, rb) in zip(got, pairs(list(ref))):
                assert torch.allclose(gw, rw, atol=1e-12) and torch.allclose(gb, rb, atol=1e-12)
        assert float(loss[m]) == pytest.approx(float(per_ex.detach().mean()), rel=1e-12)


def test_eval_set_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="x="):
        S.EvalSet.build(torch.zeros(2, 5, 3), torch.zeros(2, 4, dtype=torch.long), 3, True)


# ----------------------------------------------------------------------------- a whole training run

def oracle_run(xs, ys, num_classes, widths, seeds, epochs, batch_size, lr, per_class):
    """Model by model: torch.optim.SGD on a memlib MLP, the batches in the order of the seed's "order" stream, each
    example's sensitivity by plain unrolled autograd (float64) before the step it takes part in."""
    k, n, d = xs.shape
    g = np.zeros((epochs, k, n))
    pc_sum = np.zeros((k, n, num_classes))
    mats = np.zeros((epochs, k, num_classes, num_classes))
    loss = np.zeros((epochs, k))
    acc = np.zeros((epochs, k))
    for m, s in enumerate(seeds):
        net = build_seeded(lambda: build_model("mlp", (d,), num_classes, tuple(widths)), s)
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        order = stream(s, "order")
        lin = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        x64, y = xs[m].double(), ys[m]
        for e in range(epochs):
            perm = torch.randperm(n, generator=order)
            pc_epoch = np.zeros((n, num_classes))
            for i in range(0, n, batch_size):
                idx = perm[i:i + batch_size]
                w = [(layer.weight.detach().double(), layer.bias.detach().double()) for layer in lin]
                terms = list(range(num_classes)) if per_class else None
                sens = unrolled_autograd(w, x64[idx], y[idx], x64, y, lr, terms)  # (R, B, d)
                g[e, m, idx] = sens.sum(0).abs().sum(-1).numpy()
                pc_epoch[idx] = sens.abs().sum(-1).T.numpy()
                opt.zero_grad()
                F.cross_entropy(net(xs[m][idx]), y[idx]).backward()
                opt.step()
            with torch.no_grad():
                out = net(xs[m])
                loss[e, m] = float(F.cross_entropy(out, y))
                acc[e, m] = float((out.argmax(1) == y).float().mean())
            pc_sum[m] += pc_epoch
            for j in range(num_classes):
                members = (y == j).numpy()
                if members.any():
                    mats[e, m, :, j] = pc_epoch[members].mean(0)
    return g, pc_sum, mats, loss, acc


@pytest.mark.parametrize("per_class", [True, False])
def test_training_run_equals_a_model_by_model_oracle(per_class):
    gen = torch.Generator().manual_seed(7)
    k, n, d = 2, 12, 3
    num_classes = 3 if per_class else n
    xs = torch.randn(k, n, d, generator=gen)
    ys = torch.randint(0, 3, (k, n), generator=gen) if per_class else torch.arange(n).expand(k, n).contiguous()
    kw = dict(widths=(4, 3), seeds=[11, 12], epochs=2, batch_size=5, lr=0.5)
    tr = S.train_with_sensitivity(xs, ys, num_classes, per_class=per_class, **kw)
    g, pc_sum, mats, loss, acc = oracle_run(xs, ys, num_classes, per_class=per_class, **kw)
    assert tr.g.shape == (2, k, n) and (tr.g > 0).double().mean() > 0.8  # not vacuous
    np.testing.assert_allclose(tr.g.numpy(), g, rtol=2e-4, atol=1e-7)
    np.testing.assert_allclose(tr.loss.numpy(), loss, rtol=1e-5)
    np.testing.assert_allclose(tr.acc.numpy(), acc)
    if per_class:
        np.testing.assert_allclose(tr.per_class_sum.numpy(), pc_sum, rtol=2e-4, atol=1e-7)
        np.testing.assert_allclose(tr.matrices.numpy(), mats, rtol=2e-4, atol=1e-7)
    else:
        assert tr.per_class_sum is None and tr.matrices is None


@pytest.mark.parametrize("bad, match", [({"seeds": [1]}, "seeds"), ({"epochs": 0}, "epochs"),
                                        ({"batch_size": 13}, "batch_size"), ({"lr": 0.0}, "lr")])
def test_training_run_refuses_bad_settings(bad, match):
    kw = {**dict(widths=(4,), seeds=[1, 2], epochs=1, batch_size=4, lr=0.1, per_class=True), **bad}
    with pytest.raises(ValueError, match=match):
        S.train_with_sensitivity(torch.zeros(2, 12, 3), torch.zeros(2, 12, dtype=torch.long), 3, **kw)


# ----------------------------------------------------------------------------- summaries

def test_running_means_by_hand():
    g = np.array([[[2.0, 0.0]], [[4.0, 3.0]], [[0.0, 6.0]]])  # (epochs, models, examples)
    np.testing.assert_allclose(S.running_means(g), [[[2, 0]], [[3, 1.5]], [[2, 3]]])
    with pytest.raises(ValueError, match="g="):
        S.running_means(np.zeros((0, 2)))


def test_class_matrix_by_hand():
    # rows: sensitivity of loss terms (class 0, class 1, class 2); examples 0,1 are class 0, examples 2,3 class 1
    pc = np.array([[4.0, 2.0, 1.0], [2.0, 2.0, 1.0], [1.0, 3.0, 1.0], [1.0, 5.0, 1.0]])
    m = S.class_matrix(pc, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(m[:, :2], [[3.0, 1.0], [2.0, 4.0], [1.0, 1.0]])  # cell (i, j): term i, class j
    assert np.isnan(m[:, 2]).all()  # class 2 has no example
    with pytest.raises(ValueError, match="labels"):
        S.class_matrix(pc, np.array([0, 1]))


def test_off_diagonal_share_by_hand_and_under_scaling():
    mats = np.array([[[2.0, 1.0], [1.0, 4.0]], [[1.0, 0.0], [0.0, 1.0]]])
    np.testing.assert_allclose(S.off_diagonal_share(mats), [2.0 / 8.0, 0.0])
    assert float(S.off_diagonal_share(mats[0])) == pytest.approx(0.25)
    assert float(S.off_diagonal_share(1e-7 * mats[0])) == pytest.approx(0.25)  # a share: scale-free
    with np.errstate(invalid="ignore"):
        assert np.isnan(S.off_diagonal_share(np.zeros((2, 2))))  # no mass: undefined
    with pytest.raises(ValueError, match="mats"):
        S.off_diagonal_share(np.ones((2, 3)))


# ----------------------------------------------------------------------------- inputs

def test_pool_inputs_averages_2x2_blocks():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    out = S.pool_inputs(x, 2)
    assert out.shape == (2, 1, 2, 3)
    assert out[1, 0, 1, 2] == pytest.approx(float(x[1, 0, 2:4, 4:6].mean()))
    assert S.pool_inputs(x, 1) is x
    with pytest.raises(ValueError, match="pool"):
        S.pool_inputs(x, 8)


def test_pool_inputs_of_sequences_averages_windows():
    x = torch.tensor([[[1.0, 3.0, 5.0, 7.0, 9.0]]])
    assert S.pool_inputs(x, 2).tolist() == [[[2.0, 6.0]]]  # the trailing 9 does not fill a window


def test_paper_downscaling_gives_14x14():
    assert S.pool_inputs(torch.zeros(3, 1, 28, 28), 2).shape == (3, 1, 14, 14)
