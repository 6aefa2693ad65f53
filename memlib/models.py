"""Models: MLPs of any widths, Zhang et al.'s small AlexNet, a small image CNN and a 1-D CNN.

Parameter counts on 28×28×3 inputs match Zhang et al. 2017, Table 1 (MLP 1×512: 1,209,866;
MLP 3×512: 1,735,178; small AlexNet: 1,387,786) — see tests/test_models.py.
"""
from __future__ import annotations

import math

import torch
from torch import nn

MODELS = ("mlp", "alexnet_small", "cnn", "cnn1d")


class MLP(nn.Sequential):
    """Flatten → [Linear → ReLU → Dropout]×len(widths) → Linear(num_classes)."""

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


class AlexNetSmall(nn.Module):
    """Zhang et al.'s small AlexNet: 2 × [conv5×5(64) → ReLU → maxpool3×3/2 → LRN], FC 384 → 192 → 10."""

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

    def forward(self, x):
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """Two conv layers (3×3, ReLU, 2×2 max-pool where the map is large enough) → FC → classes."""

    def __init__(self, input_shape, num_classes: int = 10, channels: int = 32, hidden: int = 128,
                 dropout: float = 0.0):
        super().__init__()
        c, h, w = input_shape
        layers: list[nn.Module] = []
        cin = c
        for cout in (channels, 2 * channels):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 8:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(cin * h * w, hidden), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class CNN1d(nn.Module):
    """1-D CNN for sequences ``(N, C, L)``: three conv(5) layers with stride 2, then a linear head."""

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

    def forward(self, x):
        return self.classifier(self.features(x))


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


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
