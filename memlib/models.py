"""Models: MLPs of any widths, Zhang et al.'s small AlexNet, a small image CNN, a 1-D CNN, and a
character-level LSTM language model (:class:`CharLSTM`, for the exposure study; it predicts the next
character, so it is not in :data:`MODELS`, the classifier registry).

Parameter counts on 28×28×3 inputs match Zhang et al. 2017, Table 1 (MLP 1×512: 1,209,866;
MLP 3×512: 1,735,178; small AlexNet: 1,387,786) — see tests/test_models.py.

Hidden states. Every model here has ``forward(x, return_hidden=False)``; with ``return_hidden=True`` it
returns ``(logits, hidden)``, ``hidden`` a dict ``{name: tensor}`` ordered input → output with one entry
per hidden layer: the output of the layer's *block*, i.e. the tensor the next parametric layer consumes —
after the ReLU and after the max-pooling / local response normalisation that follow it inside the block,
but before dropout (in train mode a layer's state still sees the dropout masks of the layers before
it; :mod:`memlib.activations` evaluates in eval mode). Names: ``conv1, conv2, …`` for convolution blocks and
``fc1, fc2, …`` for hidden fully-connected layers, counted separately, in order; the output layer (the logits) has no
name. ``layer_names()`` lists them without running the model. The states are read inside ``forward`` (no
hooks), so they also come out of ``torch.func.functional_call`` under ``vmap`` (see
:mod:`memlib.ensemble`); :mod:`memlib.activations` is the capture function built on top.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import torch
from torch import nn

MODELS = ("mlp", "alexnet_small", "cnn", "cnn1d")
#: The input layouts each model takes (:data:`memlib.data.INPUT_KINDS`): the MLP flattens anything.
MODEL_INPUTS = {"mlp": ("image", "sequence"), "alexnet_small": ("image",), "cnn": ("image",), "cnn1d": ("sequence",)}

# modules that end a block after its ReLU: the block's hidden state is read after them
_BLOCK_TAIL = (nn.MaxPool1d, nn.MaxPool2d, nn.LocalResponseNorm)


class _MaxPool2x2Fn(torch.autograd.Function):
    """2×2 max pooling, stride 2, as three elementwise maxima of strided views, with the first maximum in row-major
    order taking the gradient — what ``F.max_pool2d(x, 2)`` computes, forward and backward, tie for tie. On CPU it is
    several times faster than the pooling kernel (benchmarks: ``cnn_epoch_vs_max_pool2d``); works under ``vmap``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        a, b = x[..., 0:h:2, 0:w:2], x[..., 0:h:2, 1:w:2]
        c, d = x[..., 1:h:2, 0:w:2], x[..., 1:h:2, 1:w:2]
        top_right, bottom_right = b > a, d > c  # strict: on a tie the earlier position wins, as max_pool2d
        top, bottom = torch.where(top_right, b, a), torch.where(bottom_right, d, c)
        below = bottom > top
        which = torch.where(below, 2 + bottom_right.to(torch.uint8), top_right.to(torch.uint8))
        return torch.where(below, bottom, top), which

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])
        ctx.in_shape = inputs[0].shape

    @staticmethod
    def backward(ctx, grad, _):
        (which,) = ctx.saved_tensors
        parts = torch.stack([grad * (which == k) for k in range(4)], -1)  # (..., h/2, w/2, 4): 2×2 row-major
        *lead, hh, ww, _ = parts.shape
        full = parts.view(*lead, hh, ww, 2, 2).transpose(-3, -2).reshape(*lead, 2 * hh, 2 * ww)
        H, W = ctx.in_shape[-2:]
        if (H, W) != (2 * hh, 2 * ww):  # odd sizes: the last row / column is not pooled (floor mode)
            full = torch.nn.functional.pad(full, (0, W - 2 * ww, 0, H - 2 * hh))
        return full


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` (same values, same gradients, same module type for the hidden-state taps) computed by
    :class:`_MaxPool2x2Fn`."""

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _MaxPool2x2Fn.apply(x)[0]


def _taps(parts: Sequence[nn.Sequential]) -> list[dict[int, str]]:
    """For each part, ``{index of the module after which a hidden state is read: its name}``.

    A hidden layer is a Linear/Conv followed by a ReLU; its state is read after the ReLU and any pooling /
    LRN right after it (see the module docstring). Counters run across the parts (features, classifier)."""
    counts: dict[str, int] = {}
    plan = []
    for part in parts:
        taps: dict[str, int] = {}
        kind, pending = None, None
        for i, layer in enumerate(part):
            if isinstance(layer, nn.Linear):
                kind = "fc"
            elif isinstance(layer, (nn.Conv1d, nn.Conv2d)):
                kind = "conv"
            if isinstance(layer, nn.ReLU) and kind is not None:
                counts[kind] = counts.get(kind, 0) + 1
                pending = f"{kind}{counts[kind]}"
                taps[pending] = i
            elif pending is not None and isinstance(layer, _BLOCK_TAIL):
                taps[pending] = i
            else:
                pending = None
        plan.append({i: name for name, i in taps.items()})
    return plan


def _layer_names(parts: Sequence[nn.Sequential]) -> list[str]:
    return [name for taps in _taps(parts) for name in taps.values()]


def _forward(parts: Sequence[nn.Sequential], x: torch.Tensor, return_hidden: bool):
    """Run the modules of ``parts`` in order; with ``return_hidden`` also collect the hidden states."""
    if not return_hidden:
        for part in parts:
            for layer in part:
                x = layer(x)
        return x
    hidden: dict[str, torch.Tensor] = {}
    for part, taps in zip(parts, _taps(parts)):
        for i, layer in enumerate(part):
            x = layer(x)
            if i in taps:
                hidden[taps[i]] = x
    return x, hidden


class MLP(nn.Sequential):
    """Flatten → [Linear → ReLU → Dropout]×len(widths) → Linear(num_classes).

    Hidden states (``forward(x, return_hidden=True)``): ``fc1 … fc{len(widths)}``, each ``(B, width)``,
    read after the ReLU, before dropout."""

    def __init__(self, input_shape, widths, num_classes: int = 10, dropout: float = 0.0):
        layers: list[nn.Module] = [nn.Flatten()]
        d = math.prod(input_shape)
        for w in widths:
            layers += [nn.Linear(d, w), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = w
        layers.append(nn.Linear(d, num_classes))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        """Logits ``(B, classes)``; with ``return_hidden`` the pair ``(logits, {name: hidden state})``."""
        return _forward((self,), x, return_hidden)

    def layer_names(self) -> list[str]:
        """Names of the hidden states, input → output."""
        return _layer_names((self,))


class AlexNetSmall(nn.Module):
    """Zhang et al.'s small AlexNet: 2 × [conv5×5(64) → ReLU → maxpool3×3/2 → LRN], FC 384 → 192 → 10.

    Hidden states (``forward(x, return_hidden=True)``): ``conv1``, ``conv2`` — ``(B, 64, h, w)``, each block's
    output after ReLU, max-pool and LRN; ``fc1`` ``(B, 384)``, ``fc2`` ``(B, 192)`` after the ReLU, before
    dropout."""

    def __init__(self, input_shape, num_classes: int = 10, channels: int = 64, dropout: float = 0.0):
        super().__init__()
        c, h, w = input_shape

        def block(cin):
            return [nn.Conv2d(cin, channels, 5, padding=2), nn.ReLU(),
                    nn.MaxPool2d(3, stride=2, padding=1), nn.LocalResponseNorm(4, alpha=0.001 / 9.0, beta=0.75, k=1.0)]

        self.features = nn.Sequential(*block(c), *block(channels))
        with torch.no_grad():
            n_flat = self.features(torch.zeros(1, c, h, w)).numel()
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(n_flat, 384), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(384, 192), nn.ReLU(), nn.Dropout(dropout), nn.Linear(192, num_classes))

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        """Logits ``(B, classes)``; with ``return_hidden`` the pair ``(logits, {name: hidden state})``."""
        return _forward((self.features, self.classifier), x, return_hidden)

    def layer_names(self) -> list[str]:
        """Names of the hidden states, input → output."""
        return _layer_names((self.features, self.classifier))


class SmallCNN(nn.Module):
    """Two conv layers (3×3, ReLU, 2×2 max-pool where the map is large enough) → FC → classes.

    Hidden states (``forward(x, return_hidden=True)``): ``conv1`` ``(B, channels, h, w)``, ``conv2``
    ``(B, 2·channels, h', w')`` — each block's output, after the ReLU and after the max-pool where the
    block has one (a block pools when its input map is at least 8×8); ``fc1`` ``(B, hidden)`` after the
    ReLU, before dropout."""

    def __init__(self, input_shape, num_classes: int = 10, channels: int = 32, hidden: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        cin = c
        for cout in (channels, 2 * channels):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 8:
                layers.append(MaxPool2x2())
                h, w = h // 2, w // 2
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin * h * w, hidden), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        """Logits ``(B, classes)``; with ``return_hidden`` the pair ``(logits, {name: hidden state})``."""
        return _forward((self.features, self.classifier), x, return_hidden)

    def layer_names(self) -> list[str]:
        """Names of the hidden states, input → output."""
        return _layer_names((self.features, self.classifier))


class CNN1d(nn.Module):
    """1-D CNN for sequences ``(N, C, L)``: three conv(5) layers with stride 2, then a linear head.

    Hidden states (``forward(x, return_hidden=True)``): ``conv1``, ``conv2``, ``conv3``, each
    ``(B, channels, length)`` after its ReLU (no pooling); there is no hidden fully-connected layer."""

    def __init__(self, input_shape, num_classes: int = 10, channels: int = 32, dropout: float = 0.0):
        super().__init__()
        c, length = input_shape
        layers: list[nn.Module] = []
        cin = c
        for _ in range(3):
            layers += [nn.Conv1d(cin, channels, 5, stride=2, padding=2), nn.ReLU()]
            cin, length = channels, (length - 1) // 2 + 1
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * length, num_classes))

    def forward(self, x: torch.Tensor, return_hidden: bool = False):
        """Logits ``(B, classes)``; with ``return_hidden`` the pair ``(logits, {name: hidden state})``."""
        return _forward((self.features, self.classifier), x, return_hidden)

    def layer_names(self) -> list[str]:
        """Names of the hidden states, input → output."""
        return _layer_names((self.features, self.classifier))


class CharLSTM(nn.Module):
    """A character-level language model: embedding → ``layers``-layer LSTM (``hidden`` units) → linear
    logits over the vocabulary, as in Carlini et al. 2019 (their PTB model: 2 layers of 200 units).

    ``forward(ids, state=None)`` takes ids ``(B, T)`` (int64) and returns next-character logits
    ``(B, T, vocab)``: position ``t`` predicts ``ids[:, t + 1]``. ``state`` is the LSTM's ``(h, c)``, each
    ``(layers, B, hidden)`` (zeros when None); with ``return_state=True`` the pair ``(logits, state)`` comes
    back, so a sequence can be scored in pieces (prefix once, then continuations from its state).
    ``lstm`` replaces the recurrent module by another with the same constructor, call and state-dict layout
    (the exposure study passes Opacus's ``DPLSTM`` for per-example gradients)."""

    def __init__(self, vocab_size: int, embed: int = 32, hidden: int = 128, layers: int = 1,
                 dropout: float = 0.0, lstm: type[nn.Module] = nn.LSTM):
        super().__init__()
        for name, value, low in (("vocab_size", vocab_size, 2), ("embed", embed, 1), ("hidden", hidden, 1),
                                 ("layers", layers, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} is not allowed; use an integer >= {low}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r} is not allowed; use a number in [0, 1)")
        self.vocab_size, self.hidden, self.layers = vocab_size, hidden, layers
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = lstm(embed, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab_size)

    def initial_state(self, batch: int, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero state ``(h, c)`` for ``batch`` sequences."""
        if device is None:
            device = self.out.weight.device
        z = torch.zeros(self.layers, batch, self.hidden, device=device, dtype=dtype)
        return z, z.clone()

    def forward(self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None,
                return_state: bool = False):
        if ids.dim() != 2:
            raise ValueError(f"ids of shape {tuple(ids.shape)} are not allowed; use (batch, time) int64 ids")
        if state is None:
            state = self.initial_state(ids.shape[0], ids.device)
        h, state = self.lstm(self.embed(ids), state)
        logits = self.out(self.drop(h))
        return (logits, state) if return_state else logits


def build_model(name: str, input_shape, num_classes: int = 10, widths=(512,), dropout: float = 0.0) -> nn.Module:
    """Build a model by name; ``widths`` is used by ``mlp`` only."""
    input_shape = tuple(int(s) for s in input_shape)
    if name == "mlp":
        if not widths or any((not isinstance(w, int)) or w < 1 for w in widths):
            raise ValueError(f"widths={widths!r} is not allowed; use a non-empty list of positive integers")
        return MLP(input_shape, widths, num_classes, dropout)
    if name in ("alexnet_small", "cnn"):
        if len(input_shape) != 3:
            raise ValueError(f"model={name!r} needs image inputs (C, H, W); got input shape {input_shape}")
        cls = AlexNetSmall if name == "alexnet_small" else SmallCNN
        return cls(input_shape, num_classes, dropout=dropout)
    if name == "cnn1d":
        if len(input_shape) != 2:
            raise ValueError(f"model='cnn1d' needs sequence inputs (C, L); got input shape {input_shape}")
        return CNN1d(input_shape, num_classes, dropout=dropout)
    raise ValueError(f"model={name!r} is not known; choose one of {list(MODELS)}")


def supports_hidden(model) -> bool:
    """Whether ``model`` follows the hidden-state protocol: ``forward(x, return_hidden=...)`` and
    ``layer_names()`` (every model of this module does)."""
    if not isinstance(model, nn.Module) or not callable(getattr(model, "layer_names", None)):
        return False
    try:
        return "return_hidden" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
