"""memlib.activations: the captured hidden states against a layer-by-layer computation written here with
torch.nn.functional on each model's own weights (never the model's forward), K models against each
model alone, and the guarantees (batch size, eval mode, mode restored, errors)."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from memlib.activations import collect, collect_many, layer_names
from memlib.ensemble import StackedMLP, VmapEnsemble, build_ensemble
from memlib.models import build_model

IMAGE, SEQ = (1, 8, 8), (1, 40)


def inputs(shape, n=23, seed=0):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def seeded(name, shape, seed, **kw):
    torch.manual_seed(seed)
    return build_model(name, shape, 10, **kw)


def of(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


# --- oracles: each architecture written out by hand ----------------------------------------------------

def mlp_oracle(model, x):
    lin = of(model, nn.Linear)
    h, out = x.reshape(len(x), -1), {}
    for i, l in enumerate(lin[:-1]):
        h = F.relu(F.linear(h, l.weight, l.bias))
        out[f"fc{i + 1}"] = h
    return out, F.linear(h, lin[-1].weight, lin[-1].bias)


def cnn_oracle(model, x, pools):
    """SmallCNN: conv3×3 → ReLU (→ maxpool 2×2 where ``pools`` says), twice; FC → ReLU; FC."""
    c1, c2 = of(model, nn.Conv2d)
    f1, f2 = of(model, nn.Linear)
    h1 = F.relu(F.conv2d(x, c1.weight, c1.bias, padding=1))
    h1 = F.max_pool2d(h1, 2) if pools[0] else h1
    h2 = F.relu(F.conv2d(h1, c2.weight, c2.bias, padding=1))
    h2 = F.max_pool2d(h2, 2) if pools[1] else h2
    h3 = F.relu(F.linear(h2.reshape(len(x), -1), f1.weight, f1.bias))
    return {"conv1": h1, "conv2": h2, "fc1": h3}, F.linear(h3, f2.weight, f2.bias)


def alexnet_oracle(model, x):
    """Zhang et al.'s small AlexNet: [conv5×5 → ReLU → maxpool 3/2 → LRN]×2, FC 384 → 192 → classes."""
    out, h = {}, x
    for i, c in enumerate(of(model, nn.Conv2d)):
        h = F.relu(F.conv2d(h, c.weight, c.bias, padding=2))
        h = F.max_pool2d(h, 3, stride=2, padding=1)
        out[f"conv{i + 1}"] = h = F.local_response_norm(h, 4, alpha=0.001 / 9.0, beta=0.75, k=1.0)
    h = h.reshape(len(x), -1)
    lin = of(model, nn.Linear)
    for i, l in enumerate(lin[:-1]):
        out[f"fc{i + 1}"] = h = F.relu(F.linear(h, l.weight, l.bias))
    return out, F.linear(h, lin[-1].weight, lin[-1].bias)


def cnn1d_oracle(model, x):
    out, h = {}, x
    for i, c in enumerate(of(model, nn.Conv1d)):
        out[f"conv{i + 1}"] = h = F.relu(F.conv1d(h, c.weight, c.bias, stride=2, padding=2))
    (l,) = of(model, nn.Linear)
    return out, F.linear(h.reshape(len(x), -1), l.weight, l.bias)


CASES = {  # id: (model name, input shape, build kwargs, oracle, expected layer names)
    "mlp": ("mlp", IMAGE, {"widths": [16, 12, 8]}, mlp_oracle, ["fc1", "fc2", "fc3"]),
    "mlp_seq": ("mlp", SEQ, {"widths": [20]}, mlp_oracle, ["fc1"]),
    "cnn8": ("cnn", IMAGE, {}, lambda m, x: cnn_oracle(m, x, (True, False)), ["conv1", "conv2", "fc1"]),
    "cnn16": ("cnn", (1, 16, 16), {}, lambda m, x: cnn_oracle(m, x, (True, True)), ["conv1", "conv2", "fc1"]),
    "alexnet": ("alexnet_small", IMAGE, {}, alexnet_oracle, ["conv1", "conv2", "fc1", "fc2"]),
    "cnn1d": ("cnn1d", SEQ, {}, cnn1d_oracle, ["conv1", "conv2", "conv3"]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_collect_equals_layer_by_layer_computation(case, dropout):
    name, shape, kw, oracle, names = CASES[case]
    model = seeded(name, shape, 1, dropout=dropout, **kw).train()  # eval inside collect: dropout off
    x = inputs(shape)
    with torch.no_grad():
        want, want_logits = oracle(model, x)
    assert layer_names(model) == names == list(want)
    got = collect(model, x, batch_size=10, with_logits=True)
    assert list(got) == names + ["logits"]
    for k in names:
        torch.testing.assert_close(got[k], want[k].reshape(len(x), -1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got["logits"], want_logits, atol=1e-6, rtol=1e-5)
    unflat = collect(model, x, flatten=False)
    for k in names:
        torch.testing.assert_close(unflat[k], want[k], atol=1e-6, rtol=1e-5)
    assert model.training and all(m.training for m in model.modules())


@pytest.mark.parametrize("case", list(CASES))
def test_forward_logits_unchanged(case):
    name, shape, kw, oracle, names = CASES[case]
    model = seeded(name, shape, 2, **kw).eval()
    x = inputs(shape, n=6)
    with torch.no_grad():
        plain = model(x)
        logits, hidden = model(x, return_hidden=True)
        want_logits = oracle(model, x)[1]
    assert torch.equal(plain, logits) and list(hidden) == names
    torch.testing.assert_close(plain, want_logits, atol=1e-6, rtol=1e-5)
    assert model.forward(x, return_hidden=False).shape == (6, 10)


@pytest.mark.parametrize("case, engine", [("mlp", "stacked"), ("mlp", "vmap"), ("cnn8", "vmap"),
                                          ("alexnet", "vmap"), ("cnn1d", "vmap")])
def test_k_models_equal_each_model_alone(case, engine):
    name, shape, kw, _, names = CASES[case]
    models = [seeded(name, shape, s, dropout=0.3, **kw) for s in (3, 4, 5)]
    ens = build_ensemble(models, engine)
    assert isinstance(ens, StackedMLP if engine == "stacked" else VmapEnsemble)
    x = inputs(shape, n=17)
    assert layer_names(ens) == names
    got = collect_many(ens, x, batch_size=5, with_logits=True)
    assert list(got) == names + ["logits"]
    for k, m in enumerate(models):
        alone = collect(m, x, with_logits=True)
        for key in got:
            assert got[key].shape == (3, *alone[key].shape)
            torch.testing.assert_close(got[key][k], alone[key], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got[names[0]][0], got[names[0]][1])  # different seeds, different states
    ens.eval()
    with torch.no_grad():  # the ensemble's own forward: logits unchanged, (K, B, ...) states
        logits, hidden = ens(x, shared=True, return_hidden=True)
        assert torch.equal(logits, ens(x, shared=True))
        _, per_model = ens(x.expand(3, *x.shape), return_hidden=True)
    assert list(hidden) == names
    for key in names:
        torch.testing.assert_close(hidden[key].flatten(2), got[key], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(per_model[key], hidden[key], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case, engine", [("mlp", "stacked"), ("mlp", "vmap"), ("cnn8", "vmap")])
def test_k_models_on_inputs_of_their_own(case, engine):
    """shared=False: model k's states on x[k] equal that model alone on x[k], whatever the batch size."""
    name, shape, kw, _, names = CASES[case]
    models = [seeded(name, shape, s, **kw) for s in (3, 4)]
    ens = build_ensemble(models, engine)
    x = torch.stack([inputs(shape, n=13), inputs(shape, n=13) + 1.0])
    got = collect_many(ens, x, batch_size=4, with_logits=True, shared=False)
    for k, m in enumerate(models):
        alone = collect(m, x[k], with_logits=True)
        for key in names + ["logits"]:
            torch.testing.assert_close(got[key][k], alone[key], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="shared=False"):
        collect_many(ens, x[0], shared=False)  # (N, ...) is not one set per model


@pytest.mark.parametrize("case", ["mlp", "cnn8", "cnn1d"])
def test_result_does_not_depend_on_batch_size(case):
    name, shape, kw, _, _ = CASES[case]
    model = seeded(name, shape, 6, **kw)
    x = inputs(shape, n=50)
    a, b = collect(model, x, batch_size=7, with_logits=True), collect(model, x, batch_size=1000, with_logits=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-6)
    ens = build_ensemble([model, seeded(name, shape, 7, **kw)], "vmap")
    a, b = collect_many(ens, x, batch_size=7), collect_many(ens, x, batch_size=1000)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_mode_is_restored_also_on_error(training):
    model = seeded("cnn", IMAGE, 8, dropout=0.5).train(training)
    model.classifier[2].train(not training)  # a mixed state must come back as it was
    before = [m.training for m in model.modules()]
    collect(model, inputs(IMAGE, n=4))
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError):
        collect(model, inputs((2, 8, 8), n=4))  # wrong channel count: fails inside the forward pass
    assert [m.training for m in model.modules()] == before
    for engine in ("stacked", "vmap"):
        ens = build_ensemble([seeded("mlp", IMAGE, s, widths=[8], dropout=0.5) for s in (0, 1)], engine)
        ens.train(training)
        collect_many(ens, inputs(IMAGE, n=4))
        assert ens.training == training
        with pytest.raises(RuntimeError):
            collect_many(ens, inputs((1, 9, 9), n=4))
        assert ens.training == training


def test_dropout_does_not_reach_the_captured_states():
    model = seeded("mlp", IMAGE, 9, widths=[64, 64], dropout=0.5).train()
    x = inputs(IMAGE, n=20)
    a, b = collect(model, x, with_logits=True), collect(model, x, with_logits=True)
    for k in a:
        assert torch.equal(a[k], b[k])
    ens = build_ensemble([model, model], "stacked", generator=torch.Generator().manual_seed(0)).train()
    a, b = collect_many(ens, x), collect_many(ens, x)
    assert all(torch.equal(a[k], b[k]) for k in a) and torch.equal(a["fc2"][0], a["fc2"][1])
    with torch.no_grad():  # train mode: the state is read before dropout, the logits see the mask
        _, h = ens(x, shared=True, return_hidden=True)
    assert torch.equal(h["fc1"][0], h["fc1"][1])


def test_layer_subset_order_and_errors():
    model = seeded("alexnet_small", IMAGE, 10)
    x = inputs(IMAGE, n=3)
    got = collect(model, x, layers=["fc2", "conv1"])
    assert list(got) == ["conv1", "fc2"]  # the model's order, input → output
    assert list(collect(model, x, layers="fc1")) == ["fc1"]
    assert list(collect(model, x, layers=[], with_logits=True)) == ["logits"]
    with pytest.raises(ValueError) as e:
        collect(model, x, layers=["conv1", "fc9"])
    assert "fc9" in str(e.value) and "['conv1', 'conv2', 'fc1', 'fc2']" in str(e.value)
    with pytest.raises(ValueError, match="with_logits=True"):
        collect(model, x, layers=["logits"])
    with pytest.raises(ValueError, match="batch_size=0"):
        collect(model, x, batch_size=0)
    empty = collect(model, x[:0], with_logits=True)
    assert empty["conv1"].shape == (0, 64 * 4 * 4) and empty["logits"].shape == (0, 10)


def test_unsupported_models_are_named():
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(TypeError) as e:
        collect(plain, inputs(IMAGE, n=2))
    assert "Sequential" in str(e.value) and "'cnn1d'" in str(e.value)
    with pytest.raises(TypeError, match="VmapEnsemble"):
        collect_many(build_ensemble([plain, plain], "vmap"), inputs(IMAGE, n=2))
    with pytest.raises(TypeError, match="Sequential has no hidden states.*CNN1d"):
        build_ensemble([plain, plain], "vmap")(inputs(IMAGE, n=2), shared=True, return_hidden=True)
    ens = build_ensemble([seeded("mlp", IMAGE, 0, widths=[8])] * 2)
    with pytest.raises(TypeError, match="collect_many"):
        collect(ens, inputs(IMAGE, n=2))
    with pytest.raises(TypeError, match="use collect"):
        collect_many(seeded("mlp", IMAGE, 0, widths=[8]), inputs(IMAGE, n=2))
