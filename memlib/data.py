"""Datasets as in-memory float tensors, and the corruptions of Zhang et al. 2017 / Arpit et al. 2017.

``load(name, n_train, n_test, seed)`` returns a :class:`Dataset` (inputs ``(N, C, H, W)`` for images,
``(N, C, L)`` for sequences — MNIST-1D, and the audio sets as log-mel spectrograms ``(N, mels, frames)`` —
float32; labels int64). ``audio`` is memlib's embedded, procedurally generated 10-class set; ``fsdd`` the Free
Spoken Digit Dataset read from ``MEMLIB_DATA/fsdd/recordings`` (:mod:`memlib.audio`); the character corpus for
language models is :mod:`memlib.text`. ``corrupt(ds, kind, level, seed)`` returns a new
Dataset whose training set is corrupted once, deterministically for the seed, with a mask of the
corrupted examples. The test set stays clean unless ``corrupt_test=True`` (a fixed pixel shuffle is a
change of input representation and is applied to both, as in Zhang et al.).
"""
from __future__ import annotations

import dataclasses
import fcntl
import functools
from pathlib import Path

import numpy as np
import torch

from . import datafiles
from .config import data_dir, generator, stream

DATASETS = ("digits", "mnist1d", "mnist", "fashion_mnist", "cifar10", "audio", "fsdd")
#: Examples in each source's train / test split; None where memlib generates as many as are asked for.
SPLIT_SIZES = {"digits": (1297, 500), "mnist1d": None, "mnist": (60000, 10000), "fashion_mnist": (60000, 10000),
               "cifar10": (50000, 10000), "audio": None, "fsdd": (2700, 300)}
#: Input layout of each source: ``"image"`` (C, H, W) or ``"sequence"`` (C, L) — MNIST-1D and the log-mel audio sets.
INPUT_KINDS = {"digits": "image", "mnist1d": "sequence", "mnist": "image", "fashion_mnist": "image",
               "cifar10": "image", "audio": "sequence", "fsdd": "sequence"}
CORRUPTIONS = ("none", "label_noise", "random_labels", "shuffled_pixels", "random_pixels",
               "gaussian", "randX", "randY")

@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test split held in memory. ``train_index``/``test_index`` are each row's index in the source
    dataset's own train/test split (for ``digits``: in scikit-learn's 1,797 images)."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    train_index: torch.Tensor
    test_index: torch.Tensor
    y_train_clean: torch.Tensor
    corrupted: torch.Tensor  # bool mask over the training set
    corruption: str = "none"
    level: float = 0.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def to(self, device) -> "Dataset":
        """Same dataset with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)


# ----------------------------------------------------------------------------- sources

@functools.lru_cache(maxsize=4)
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    # A fixed split (independent of the experiment seed): 1297 train, 500 test.
    perm = torch.randperm(len(y), generator=generator(20170101))
    tr, te = perm[:1297].sort().values, perm[1297:].sort().values
    return x[tr], y[tr], x[te], y[te], tr, te


@functools.lru_cache(maxsize=4)
def _mnist1d(n_total: int):
    """MNIST-1D generated offline (mnist1d.make_dataset, dataset seed 42); 80/20 split."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(np.ceil(n_total / 10.0) * 10)
    np_state = np.random.get_state()  # make_dataset seeds numpy globally: restore the caller's state
    import random
    py_state = random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = torch.tensor(d["x"], dtype=torch.float32).unsqueeze(1)
    xt = torch.tensor(d["x_test"], dtype=torch.float32).unsqueeze(1)
    return x, torch.tensor(d["y"], dtype=torch.int64), xt, torch.tensor(d["y_test"], dtype=torch.int64)


def missing_files(name: str) -> str | None:
    """A message naming the files ``name`` needs under ``MEMLIB_DATA`` that are not there, or None when nothing is
    missing (or the source is embedded/generated). Only looks (:func:`memlib.datafiles.inspect`): creates no folder,
    lock or download. Damaged files are :func:`memlib.datafiles.ensure`'s business."""
    _check_name(name)
    found = datafiles.inspect(name)
    return datafiles.missing_message(found) if found.missing else None


def check_sizes(name: str, n_train: int | None, n_test: int | None) -> None:
    """Raise ValueError when ``n_train`` / ``n_test`` exceed the source's split (known without loading it)."""
    _check_name(name)
    sizes = SPLIT_SIZES[name]
    for pname, n, size in (("n_train", n_train, sizes and sizes[0]), ("n_test", n_test, sizes and sizes[1])):
        if size and n is not None and n > size:
            raise ValueError(f"{pname}={n} is not allowed for dataset {name!r}: its {pname[2:]} split has {size:,} "
                             f"examples; use at most {size}")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's MNIST format: magic, dimensions, big-endian sizes, then the uint8 data), gzipped or not."""
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} holds {data.size} values, its header says {dims}")
    return data.reshape(dims)


@functools.lru_cache(maxsize=4)
def _idx_source(name: str, root_str: str):
    """MNIST / Fashion-MNIST read directly from their IDX files under MEMLIB_DATA (gzipped, or extracted as
    torchvision leaves them), after :func:`memlib.datafiles.ensure` checked (or downloaded) them: nothing is written
    there except a download of missing files, so MEMLIB_DATA may be read-only."""
    found = datafiles.ensure(name, Path(root_str))

    def read(stem: str) -> np.ndarray:
        f = next(f for f in found.good if f.name.startswith(stem))
        gz = found.root / f.path
        return read_idx(gz if gz.is_file() else gz.parent / f.extracted[0])

    def images(stem):
        return torch.from_numpy(read(stem).copy()).unsqueeze(1).to(torch.float32) / 255.0

    def labels(stem):
        return torch.from_numpy(read(stem).astype(np.int64))

    return images("train-images"), labels("train-labels"), images("t10k-images"), labels("t10k-labels")


@functools.lru_cache(maxsize=2)
def _cifar10(root_str: str):
    import torchvision

    root = Path(root_str)
    datafiles.ensure("cifar10", root)  # the archive is good (or was downloaded and verified): torchvision only extracts
    with open(root / ".memlib.lock", "a") as lock:  # studies run in parallel (make -j) extract one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        train = torchvision.datasets.CIFAR10(root_str, train=True, download=True)
        test = torchvision.datasets.CIFAR10(root_str, train=False, download=True)

    def arrays(ds):
        x = torch.as_tensor(np.asarray(ds.data)).permute(0, 3, 1, 2)  # CIFAR is NHWC
        return x.to(torch.float32) / 255.0, torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    return (*arrays(train), *arrays(test))


def _source(name: str, n_total: int, n_train: int | None = None, n_test: int | None = None):
    """(x_train, y_train, x_test, y_test, source index of each train row, of each test row)."""
    if name == "digits":
        return _digits()
    if name == "audio":  # procedurally generated clips (memlib.audio), as many as asked for, 2,000 / 500 at least
        from .audio import synthetic_source

        return synthetic_source(max(2000, n_train or 0), max(500, n_test or 0))
    if name == "fsdd":  # real recordings under MEMLIB_DATA/fsdd/recordings (memlib.audio), takes 0–4 are the test set
        from .audio import fsdd_source

        return fsdd_source(data_dir())
    if name == "mnist1d":
        x, y, xt, yt = _mnist1d(max(n_total, 5000))
    elif name == "cifar10":
        x, y, xt, yt = _cifar10(str(data_dir()))
    else:
        x, y, xt, yt = _idx_source(name, str(data_dir()))
    return x, y, xt, yt, torch.arange(len(y)), torch.arange(len(yt))


def num_classes(name: str) -> int:
    _check_name(name)
    return 10


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not known; choose one of {list(DATASETS)}")


def load(name: str, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Dataset:
    """Load ``name`` and take random subsets of ``n_train`` / ``n_test`` examples chosen with ``seed``'s
    ``"subset"`` stream (:func:`memlib.config.stream_seed`).

    ``None`` keeps the whole split. ``mnist1d`` is generated to size (80 % train, 20 % test).
    """
    _check_name(name)
    for pname, n in (("n_train", n_train), ("n_test", n_test)):
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"{pname}={n!r} is not allowed; use a positive integer or None")
    n_total = int(np.ceil(((n_train or 4000) / 0.8))) if name == "mnist1d" else 0
    if name == "mnist1d" and n_test is not None:
        n_total = max(n_total, int(np.ceil(n_test / 0.2)))
    x, y, xt, yt, src_tr, src_te = _source(name, n_total, n_train, n_test)
    g = stream(seed, "subset")

    def subset(n, size, pname):
        if n is None:
            return torch.arange(size)
        if n > size:
            raise ValueError(f"{pname}={n} is not allowed for dataset {name!r}: it has {size} examples in that split")
        return torch.randperm(size, generator=g)[:n].sort().values

    tr = subset(n_train, len(y), "n_train")
    te = subset(n_test, len(yt), "n_test")
    y_tr = y[tr].clone()
    return Dataset(name=name, x_train=x[tr].clone(), y_train=y_tr, x_test=xt[te].clone(), y_test=yt[te].clone(),
                   num_classes=num_classes(name), train_index=src_tr[tr], test_index=src_te[te],
                   y_train_clean=y_tr.clone(),
                   corrupted=torch.zeros(len(tr), dtype=torch.bool))


def subset(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """The first ``n`` training examples of a permutation fixed by ``seed``: subsets for growing ``n`` are
    nested, so a curve over dataset size compares like with like. The test set is unchanged."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(ds.y_train):
        raise ValueError(f"n={n!r} is not allowed; use 1 … {len(ds.y_train)} (the training set's size)")
    keep = torch.randperm(len(ds.y_train), generator=stream(seed, "nested-subset"))[:n]
    return dataclasses.replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep], train_index=ds.train_index[keep],
                               y_train_clean=ds.y_train_clean[keep], corrupted=ds.corrupted[keep])


# ----------------------------------------------------------------------------- preprocessing

def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the central ``size``×``size`` window of images ``(N, C, H, W)``."""
    h, w = x.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"size={size} is not allowed; images are {h}×{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size].contiguous()


def per_image_whiten(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's ``per_image_standardization``: (x − mean) / max(std, 1/√n) per example."""
    flat = x.reshape(len(x), -1)
    n = flat.shape[1]
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(1.0 / np.sqrt(n))
    return ((flat - mean) / std).reshape(x.shape)


def standardize(ds: Dataset) -> Dataset:
    """Subtract the training set's mean and divide by its std (one scalar each), train and test alike."""
    mean, std = ds.x_train.mean(), ds.x_train.std().clamp_min(1e-8)
    return dataclasses.replace(ds, x_train=(ds.x_train - mean) / std, x_test=(ds.x_test - mean) / std)


# ----------------------------------------------------------------------------- corruptions

def _channel_stats(x: torch.Tensor):
    dims = [0] + list(range(2, x.ndim))
    return x.mean(dim=dims, keepdim=True)[0], x.std(dim=dims, keepdim=True)[0]


def _gaussian_like(x: torch.Tensor, ref: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Gaussian noise shaped like ``x`` with the per-channel mean and std of ``ref``."""
    mean, std = _channel_stats(ref)
    return mean + std * torch.randn(x.shape, generator=g)


def _permute_positions(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Permute spatial positions (all channels of a pixel move together)."""
    flat = x.reshape(*x.shape[:2], -1)
    return flat[..., perm].reshape(x.shape)


def _random_labels(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    return torch.randint(0, k, (n,), generator=g)


def corrupt(ds: Dataset, kind: str, level: float = 1.0, seed: int = 0, corrupt_test: bool = False) -> Dataset:
    """Corrupt the training set of ``ds`` (fixed for ``seed``, drawn from its ``"corrupt"`` stream); returns a new
    Dataset.

    kind:
      ``none``;
      ``label_noise`` — each label independently, with probability ``level``, replaced by a uniform class
      (Zhang et al.'s partially corrupted labels; the mask marks the re-drawn labels);
      ``random_labels`` — every label uniform (``level`` ignored);
      ``shuffled_pixels`` — one fixed permutation of positions, train and test;
      ``random_pixels`` — a different permutation for each image;
      ``gaussian`` — every input replaced by Gaussian noise with the data's per-channel mean and std;
      ``randX`` — exactly round(level·n) inputs, chosen at random, replaced by such noise (Arpit et al.);
      ``randY`` — exactly round(level·n) labels, chosen at random, replaced by uniform labels (Arpit et al.).
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"kind={kind!r} is not a known corruption; choose one of {list(CORRUPTIONS)}")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 <= level <= 1.0:
        raise ValueError(f"level={level!r} is not allowed; use a fraction in [0, 1]")
    g = stream(seed, "corrupt")
    n, k = len(ds.y_train), ds.num_classes
    x, y, xt, yt = ds.x_train.clone(), ds.y_train.clone(), ds.x_test.clone(), ds.y_test.clone()
    mask = torch.zeros(n, dtype=torch.bool)
    if kind in ("label_noise", "random_labels"):
        p = 1.0 if kind == "random_labels" else float(level)
        mask = torch.rand(n, generator=g) < p
        y[mask] = _random_labels(int(mask.sum()), k, g)
        if corrupt_test:
            m_t = torch.rand(len(yt), generator=g) < p
            yt[m_t] = _random_labels(int(m_t.sum()), k, g)
    elif kind in ("randX", "randY"):
        chosen = torch.randperm(n, generator=g)[: int(round(level * n))]
        mask[chosen] = True
        if kind == "randX":
            x[mask] = _gaussian_like(x[mask], ds.x_train, g)
        else:
            y[mask] = _random_labels(int(mask.sum()), k, g)
    elif kind == "shuffled_pixels":
        perm = torch.randperm(x[0, 0].numel(), generator=g)
        x, xt = _permute_positions(x, perm), _permute_positions(xt, perm)
        mask[:] = True
    elif kind == "random_pixels":
        size = x[0, 0].numel()
        perms = torch.argsort(torch.rand(n, size, generator=g), dim=1)
        flat = x.reshape(n, x.shape[1], -1)
        x = torch.gather(flat, 2, perms[:, None, :].expand_as(flat)).reshape(x.shape)
        mask[:] = True
        if corrupt_test:
            perms_t = torch.argsort(torch.rand(len(yt), size, generator=g), dim=1)
            flat_t = xt.reshape(len(yt), xt.shape[1], -1)
            xt = torch.gather(flat_t, 2, perms_t[:, None, :].expand_as(flat_t)).reshape(xt.shape)
    elif kind == "gaussian":
        x = _gaussian_like(x, ds.x_train, g)
        mask[:] = True
        if corrupt_test:
            xt = _gaussian_like(xt, ds.x_train, g)
    return dataclasses.replace(ds, x_train=x, y_train=y, x_test=xt, y_test=yt, corrupted=mask,
                               corruption=kind, level=float(level) if kind != "none" else 0.0)

