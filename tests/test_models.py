import pytest
import torch

from memlib.models import build_model, count_parameters


def dense(n_in, n_out):
    return n_in * n_out + n_out


def conv(c_in, c_out, k):
    return c_in * c_out * k * k + c_out


ZHANG_INPUT = (3, 28, 28)


def test_mlp_counts_match_zhang_table1():
    # Table 1 of Zhang et al. 2017, CIFAR-10 28x28x3 inputs
    assert count_parameters(build_model("mlp", ZHANG_INPUT, 10, [512])) == 1_209_866
    assert count_parameters(build_model("mlp", ZHANG_INPUT, 10, [512, 512, 512])) == 1_735_178
    # and the same numbers from the layer formula, by hand
    assert dense(2352, 512) + dense(512, 10) == 1_209_866
    assert dense(2352, 512) + 2 * dense(512, 512) + dense(512, 10) == 1_735_178


def test_small_alexnet_count_matches_zhang_table1():
    m = build_model("alexnet_small", ZHANG_INPUT, 10)
    assert count_parameters(m) == 1_387_786
    assert conv(3, 64, 5) + conv(64, 64, 5) + dense(7 * 7 * 64, 384) + dense(384, 192) + dense(192, 10) == 1_387_786
    assert m(torch.zeros(2, *ZHANG_INPUT)).shape == (2, 10)


@pytest.mark.parametrize("name, shape", [("cnn", (1, 8, 8)), ("cnn", (1, 28, 28)), ("cnn", (3, 32, 32)),
                                         ("cnn1d", (1, 40)), ("mlp", (1, 40))])
def test_forward_shapes(name, shape):
    m = build_model(name, shape, 7)
    assert m(torch.zeros(5, *shape)).shape == (5, 7)


@pytest.mark.parametrize("name, shape, kwargs, words", [
    ("resnet", (1, 8, 8), {}, ["model='resnet'", "mlp"]),
    ("cnn", (1, 40), {}, ["needs image inputs"]),
    ("cnn1d", (1, 8, 8), {}, ["needs sequence inputs"]),
    ("mlp", (1, 8, 8), {"widths": []}, ["widths=[]"]),
])
def test_model_errors(name, shape, kwargs, words):
    with pytest.raises(ValueError) as e:
        build_model(name, shape, 10, **kwargs)
    assert all(w in str(e.value) for w in words)


def test_dropout_only_when_asked():
    assert not any(isinstance(m, torch.nn.Dropout) for m in build_model("mlp", (1, 8, 8), 10, [16]).modules())
    assert any(isinstance(m, torch.nn.Dropout) for m in build_model("mlp", (1, 8, 8), 10, [16], dropout=0.5).modules())


@pytest.mark.parametrize("name, shape, widths, names, keys", [
    ("mlp", (1, 8, 8), [16, 8], ["fc1", "fc2"], ["1", "3", "5"]),
    ("cnn", (1, 8, 8), [], ["conv1", "conv2", "fc1"], ["features.0", "features.3", "classifier.1", "classifier.4"]),
    ("alexnet_small", (1, 8, 8), [], ["conv1", "conv2", "fc1", "fc2"],
     ["features.0", "features.4", "classifier.1", "classifier.4", "classifier.7"]),
    ("cnn1d", (1, 40), [], ["conv1", "conv2", "conv3"], ["features.0", "features.2", "features.4", "classifier.2"]),
])
def test_hidden_layer_names_and_unchanged_state_dict_keys(name, shape, widths, names, keys):
    m = build_model(name, shape, 10, widths or (512,))
    assert m.layer_names() == names
    assert list(m.state_dict()) == [f"{k}.{p}" for k in keys for p in ("weight", "bias")]
    logits, hidden = m(torch.zeros(3, *shape), return_hidden=True)
    assert logits.shape == (3, 10) and list(hidden) == names and all(len(h) == 3 for h in hidden.values())


def test_mlp_stays_a_sequential_with_the_same_layers():
    m = build_model("mlp", (1, 8, 8), 10, [16], dropout=0.5)
    assert isinstance(m, torch.nn.Sequential)
    assert [type(l).__name__ for l in m] == ["Flatten", "Linear", "ReLU", "Dropout", "Linear"]


# --- CharLSTM (exposure study) ---------------------------------------------------------------------

def _manual_lstm_logits(model, ids):
    """Oracle: the LSTM equations written out (gates i, f, g, o in PyTorch's order), layer by layer."""
    x = model.embed.weight[ids]                      # (B, T, E)
    B, T, _ = x.shape
    for layer in range(model.layers):
        w_ih = getattr(model.lstm, f"weight_ih_l{layer}")
        w_hh = getattr(model.lstm, f"weight_hh_l{layer}")
        b = getattr(model.lstm, f"bias_ih_l{layer}") + getattr(model.lstm, f"bias_hh_l{layer}")
        h = torch.zeros(B, model.hidden)
        c = torch.zeros(B, model.hidden)
        outs = []
        for t in range(T):
            i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        x = torch.stack(outs, 1)
    return x @ model.out.weight.T + model.out.bias


@pytest.mark.parametrize("layers", [1, 2])
def test_char_lstm_matches_the_written_out_equations(layers):
    from memlib.models import CharLSTM

    torch.manual_seed(0)
    model = CharLSTM(11, embed=5, hidden=7, layers=layers).eval()
    ids = torch.randint(0, 11, (3, 6))
    with torch.no_grad():
        logits = model(ids)
        assert logits.shape == (3, 6, 11)
        torch.testing.assert_close(logits, _manual_lstm_logits(model, ids), atol=1e-5, rtol=1e-5)


def test_char_lstm_scores_a_sequence_in_pieces_from_the_carried_state():
    from memlib.models import CharLSTM

    torch.manual_seed(1)
    model = CharLSTM(9, embed=4, hidden=6, layers=2).eval()
    ids = torch.randint(0, 9, (2, 8))
    with torch.no_grad():
        whole = model(ids)
        first, state = model(ids[:, :5], return_state=True)
        rest = model(ids[:, 5:], state)
    assert state[0].shape == (2, 2, 6) and state[1].shape == (2, 2, 6)
    torch.testing.assert_close(torch.cat([first, rest], 1), whole, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kwargs, name", [({"vocab_size": 1}, "vocab_size"), ({"hidden": 0}, "hidden"),
                                          ({"layers": 0}, "layers"), ({"dropout": 1.0}, "dropout")])
def test_char_lstm_rejects_bad_sizes(kwargs, name):
    from memlib.models import CharLSTM

    args = {"vocab_size": 10} | kwargs
    with pytest.raises(ValueError, match=name):
        CharLSTM(**args)


@pytest.mark.parametrize("shape", [(3, 4, 8, 8), (2, 3, 7, 9), (5, 2, 28, 28)])
def test_maxpool2x2_equals_max_pool2d_values_and_gradients_tie_for_tie(shape):
    from torch.nn import functional as F
    from memlib.models import MaxPool2x2

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(*shape, generator=g) * 2).round() / 2  # coarse values: many ties inside the 2x2 windows
    assert any(len(torch.unique(w)) < 4 for w in x.unfold(-2, 2, 2).unfold(-2, 2, 2).reshape(-1, 4))
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ya, yb = F.max_pool2d(a, 2), MaxPool2x2()(b)
    w = torch.randn(ya.shape, generator=g)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.equal(ya, yb)
    assert torch.equal(a.grad, b.grad)  # the gradient goes to the same (first, row-major) maximum


def test_maxpool2x2_under_vmap_and_in_smallcnn():
    from torch.func import grad, vmap
    from torch.nn import functional as F
    from memlib.models import MaxPool2x2, SmallCNN

    x = torch.randn(4, 2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = vmap(grad(lambda z: (MaxPool2x2()(z) ** 2).sum()))(x)
    ref = vmap(grad(lambda z: (F.max_pool2d(z, 2) ** 2).sum()))(x)
    assert torch.equal(ours, ref)
    pools = [m for m in SmallCNN((1, 28, 28)).features if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2 and all(isinstance(m, MaxPool2x2) for m in pools)
