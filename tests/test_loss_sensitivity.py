"""Study 04 (the Gini coefficient is tested in test_stats.py): the one-step-unrolled
sensitivity against central finite differences (float64); pooling; the per-class analysis; config errors."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from memlib.studies import loss_sensitivity as study


def mlp_loss(weights, x, y):
    """Independent plain forward: nn.Linear convention (W is out×in), ReLU between layers; CE per example."""
    h = x
    for i, (w, b) in enumerate(weights):
        h = h @ w.T + b
        if i < len(weights) - 1:
            h = torch.relu(h)
    return F.cross_entropy(h, y, reduction="none")


def sgd_then_loss(weights, xb, yb, x_eval, y_eval, lr, classes_of_terms):
    """Loss terms after one SGD step on (xb, yb), by plain autograd of the first order only (no create_graph)."""
    params = [t.clone().requires_grad_(True) for wb in weights for t in wb]
    loss = mlp_loss([(params[2 * i], params[2 * i + 1]) for i in range(len(weights))], xb, yb).mean()
    grads = torch.autograd.grad(loss, params)
    new = [p.detach() - lr * g for p, g in zip(params, grads)]
    per_ex = mlp_loss([(new[2 * i], new[2 * i + 1]) for i in range(len(weights))], x_eval, y_eval)
    n = len(y_eval)
    if classes_of_terms is None:
        return per_ex.sum().reshape(1) / n
    return torch.stack([per_ex[y_eval == c].sum() / n for c in classes_of_terms])


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


def tiny_problem(num_classes, seed, n=7, d=3, widths=(4, 3), k=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, n, d, generator=g, dtype=torch.float64)
    y = (torch.randint(0, num_classes, (k, n), generator=g) if num_classes < n
         else torch.arange(n).expand(k, n).contiguous())
    params = study.init_params(d, num_classes, widths, [seed + 1, seed + 2][:k], "cpu", dtype=torch.float64)
    # nudge the weights off PyTorch's init so the check does not depend on it
    params = [p + 0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    idx = torch.stack([torch.randperm(n, generator=g)[:4] for _ in range(k)])
    return x, y, params, idx


def to_linear(params, m):
    """Model m of the stacked params in nn.Linear convention [(W out×in, b), …]."""
    return [(params[2 * i][m].T.contiguous(), params[2 * i + 1][m, 0].contiguous()) for i in range(len(params) // 2)]


@pytest.mark.parametrize("per_class", [True, False])
def test_unrolled_sensitivity_matches_finite_differences(per_class):
    num_classes = 3 if per_class else 7  # one class per example: 7 examples, 7 classes
    x, y, params, idx = tiny_problem(num_classes, seed=2)  # a seed whose 4-unit layer is not dead
    lr = 0.5
    rows = torch.arange(x.shape[0])[:, None]
    eval_set = study.EvalSet.build(x, y, num_classes, per_class)
    new, s, loss, acc = study.sgd_step_sensitivity(params, x[rows, idx], y[rows, idx], lr, eval_set)
    assert s.dtype == torch.float64
    assert s.shape == ((num_classes if per_class else 1), x.shape[0], idx.shape[1], x.shape[2])
    for m in range(x.shape[0]):
        w = to_linear(params, m)
        fd = finite_difference(w, x[m, idx[m]].clone(), y[m, idx[m]], x[m], y[m], lr,
                               list(range(num_classes)) if per_class else None)
        assert torch.allclose(s[:, m], fd, rtol=1e-5, atol=1e-9), (s[:, m] - fd).abs().max()
        assert fd.abs().max() > 1e-4  # the check is not vacuous
        # the step itself and the training loss after it
        ref = sgd_then_loss(w, x[m, idx[m]], y[m, idx[m]], x[m], y[m], lr, None)
        assert float(loss[m]) == pytest.approx(float(ref), rel=1e-10)


def test_sensitivity_total_is_the_sum_of_class_terms_and_independent_of_batchmates():
    """Checks against a one-example batch of the same network (batch mean → scale 1/B) by finite differences."""
    x, y, params, idx = tiny_problem(3, seed=4, k=1)
    lr = 0.3
    eval_set = study.EvalSet.build(x, y, 3, True)
    _, s, _, _ = study.sgd_step_sensitivity(params, x[:, idx[0]], y[:, idx[0]], lr, eval_set)
    w = to_linear(params, 0)
    fd_total = finite_difference(w, x[0, idx[0]].clone(), y[0, idx[0]], x[0], y[0], lr, None)
    assert torch.allclose(s.sum(0)[0], fd_total[0], rtol=1e-5, atol=1e-9)


def test_sgd_step_equals_torch_optim_sgd():
    x, y, params, idx = tiny_problem(3, seed=2, k=1)
    lr = 0.1
    rows = torch.arange(1)[:, None]
    new, _, _, _ = study.sgd_step_sensitivity(params, x[rows, idx], y[rows, idx], lr,
                                              study.EvalSet.build(x, y, 3, True))
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


# ----------------------------------------------------------------------------- data and analysis

def test_pool_inputs_averages_2x2_blocks():
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    out = study.pool_inputs(x, 2)
    assert out.shape == (2, 1, 2, 3)
    assert out[1, 0, 1, 2] == pytest.approx(float(x[1, 0, 2:4, 4:6].mean()))
    assert study.pool_inputs(x, 1) is x
    with pytest.raises(ValueError, match="pool"):
        study.pool_inputs(x, 8)


def test_paper_downscaling_gives_14x14():
    assert study.pool_inputs(torch.zeros(3, 1, 28, 28), 2).shape == (3, 1, 14, 14)


def make_result(per_class_real, per_class_rand, gini_rows):
    """A hand-made Result: one seed; labels 0,0,1,1; per-class sensitivities given per example."""
    labels = np.array([[0, 0, 1, 1]] * 3)
    pc = np.stack([per_class_real, per_class_rand, per_class_rand])  # real, randX, noise
    cfg = study.Config(seeds=[0], epochs=2)
    arrays = {"per_class_normal": pc, "labels": labels, "model_condition": np.array([0, 1, 2]),
              "model_seed": np.array([0, 0, 0])}
    return study.Result(config=cfg, curves=pd.DataFrame(gini_rows), arrays=arrays, meta={})


def test_per_class_matrix_and_off_diagonal_share():
    # example rows: sensitivity of loss terms (class 0, class 1); examples 0,1 are class 0, examples 2,3 class 1
    real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    rand = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    r = make_result(real, rand, [])
    m = study.per_class_matrix(r, "real")
    assert np.allclose(m, [[3.0, 1.0], [2.0, 4.0]])  # cell (i, j): loss term i, examples of class j
    assert study.off_diagonal_share(m) == pytest.approx(3.0 / 10.0)
    assert study.off_diagonal_share(study.per_class_matrix(r, "randX")) == 0.0


def test_off_diagonal_of_stacked_matrices():
    mats = np.array([[[2.0, 1.0], [1.0, 4.0]], [[1.0, 0.0], [0.0, 1.0]]])
    assert np.allclose(study._off_diagonal(mats), [2.0 / 8.0, 0.0])


def gini_rows(real, rand, mode="normal"):
    rows = []
    for cond, vals in (("real", real), ("randX", rand), ("noise", rand)):
        for e, v in enumerate(vals, start=1):
            rows.append(dict(label_mode=mode, condition=cond, seed=0, epoch=e, gini=v, gini_epoch=v,
                             train_loss=1.0, train_acc=0.5))
    return rows


def test_claims_follow_their_definitions():
    real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
    rand = np.array([[4.0, 0.0], [4.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    rows = gini_rows([0.5, 0.6], [0.2, 0.3]) + gini_rows([0.3, 0.29], [0.2, 0.3], "one_per_example")
    c = {x.id: x for x in study.claims(make_result(real, rand, rows))}
    assert c["gini_real_above_random"].reproduced
    assert not c["gini_real_above_random_one_class"].reproduced  # real falls below random at epoch 2
    assert c["per_class_off_diagonal"].reproduced  # 30 % vs 0 % off the diagonal
    c2 = {x.id: x for x in study.claims(make_result(rand, real, rows))}
    assert not c2["per_class_off_diagonal"].reproduced


# ----------------------------------------------------------------------------- config

@pytest.mark.parametrize("bad, match", [({"pool": 0}, "pool"), ({"noise_fraction": 1.0}, "noise_fraction"),
                                        ({"batch_size": 5000}, "batch_size"), ({"dataset": "imagenet"}, "dataset"),
                                        ({"seeds": [1, 1]}, "seeds"), ({"lr": 0.0}, "lr")])
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        study.Config(**bad)


def test_config_rejects_unknown_keys():
    with pytest.raises(TypeError, match="unknown"):
        study.Config.from_dict({"epoch": 3})


def test_per_class_figure_without_any_sensitivity_says_so():
    """All-zero sensitivities have no place on a log colour scale: the figure used to crash on an empty minimum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memlib.plots import NOTHING

    zero = np.zeros((4, 2))
    try:
        fig = study.plot_per_class(make_result(zero, zero, []))
        for ax, cond in zip(fig.axes, ("real", "randX")):
            (text,) = [t for t in ax.texts if t.get_gid() == NOTHING]
            assert " ".join(text.get_text().split()) == (f"no positive loss-sensitivity to show: every entry of the "
                                                         f"{study.LABELS[cond]} matrix is zero or undefined")
            assert not ax.images
        real = np.array([[4.0, 2.0], [2.0, 2.0], [1.0, 3.0], [1.0, 5.0]])
        fig = study.plot_per_class(make_result(real, zero, []))  # only the real matrix has mass: it alone is drawn
        assert fig.axes[0].images and not fig.axes[0].texts
        assert not fig.axes[1].images and [t.get_gid() for t in fig.axes[1].texts] == [NOTHING]
        fig = study.plot_per_class(make_result(real, real, []))
        assert all(ax.images for ax in fig.axes[:2]) and not any(ax.texts for ax in fig.axes)
    finally:
        plt.close("all")


def test_off_diagonal_figure_names_undefined_curves():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [dict(r, off_diagonal=(np.nan if r["condition"] == "noise" else 0.2))
            for r in gini_rows([0.5, 0.6], [0.2, 0.3])]
    try:
        r = make_result(np.ones((4, 2)), np.ones((4, 2)), rows)
        ax = study.plot_off_diagonal(r).axes[0]
        legend = [" ".join(t.get_text().split()) for t in ax.get_legend().get_texts()]
        assert legend == [study.LABELS["real"], study.LABELS["randX"],
                          f"not shown (undefined: no sensitivity at all): {study._label('noise', r.config)}"]
    finally:
        plt.close("all")
