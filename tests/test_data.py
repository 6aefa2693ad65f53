import shutil
import socket

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from memlib import data as D

from conftest import SHARED_DATA, read_idx_gz


@pytest.fixture(scope="module")
def digits():
    return D.load("digits", n_train=600, seed=1)


def test_digits_matches_scikit_learn(digits):
    ref = load_digits()
    x = digits.x_train.reshape(len(digits.y_train), -1).numpy() * 16
    np.testing.assert_allclose(x, ref.data[digits.train_index.numpy()], atol=1e-5)
    np.testing.assert_array_equal(digits.y_train.numpy(), ref.target[digits.train_index.numpy()])
    assert digits.x_train.shape == (600, 1, 8, 8) and digits.x_train.dtype == torch.float32


def test_digits_split_is_disjoint_and_subset_depends_on_seed():
    full = D.load("digits")
    ref = load_digits().data
    # train and test come from a fixed split of scikit-learn's rows: together all of them, none in both
    assert len(full.y_train) + len(full.y_test) == len(ref)
    assert set(full.train_index.tolist()).isdisjoint(full.test_index.tolist())
    assert sorted(full.train_index.tolist() + full.test_index.tolist()) == list(range(len(ref)))
    a, b = D.load("digits", 100, seed=0), D.load("digits", 100, seed=1)
    assert not torch.equal(a.train_index, b.train_index)
    assert torch.equal(a.train_index, D.load("digits", 100, seed=0).train_index)


def test_mnist1d_any_size_and_no_global_numpy_seed():
    state = np.random.get_state()
    ds = D.load("mnist1d", n_train=300, n_test=100, seed=0)
    assert ds.x_train.shape == (300, 1, 40) and ds.x_test.shape == (100, 1, 40)
    assert set(ds.y_train.unique().tolist()) <= set(range(10))
    big = D.load("mnist1d", n_train=8000, seed=0)
    assert big.x_train.shape[0] == 8000
    after = np.random.get_state()
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in zip(state, after))


def test_real_mnist_against_independent_reader(mnist_root, monkeypatch):
    monkeypatch.setenv("MEMLIB_DATA", str(mnist_root))
    ds = D.load("mnist", n_train=500, n_test=200, seed=3)
    raw = mnist_root / "MNIST" / "raw"
    x_ref = read_idx_gz(raw / "train-images-idx3-ubyte.gz")
    y_ref = read_idx_gz(raw / "train-labels-idx1-ubyte.gz")
    idx = ds.train_index.numpy()
    assert x_ref.shape == (60000, 28, 28)
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), x_ref[idx] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(ds.y_train.numpy(), y_ref[idx])
    yt_ref = read_idx_gz(raw / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(ds.y_test.numpy(), yt_ref[ds.test_index.numpy()])


def test_missing_files_offline_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLIB_DATA", str(tmp_path / "empty"))

    def no_network(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(FileNotFoundError) as e:
        D.load("fashion_mnist", n_train=10)
    msg = str(e.value)
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in msg
    assert "train-images-idx3-ubyte.gz" in msg and "MEMLIB_DATA" in msg


@pytest.mark.parametrize("kwargs, words", [
    ({"name": "imagenet"}, ["dataset='imagenet'", "digits"]),
    ({"name": "digits", "n_train": 5000}, ["n_train=5000", "1297"]),
    ({"name": "digits", "n_train": 0}, ["n_train=0"]),
])
def test_load_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        D.load(**kwargs)
    assert all(w in str(e.value) for w in words)


# ----------------------------------------------------------------------------- corruptions

def test_label_noise_rate_mask_and_clean_test(digits):
    c = D.corrupt(digits, "label_noise", 0.4, seed=0)
    k = int(c.corrupted.sum())
    # Binomial(600, 0.4): mean 240, sd 12 -> 5 sd band
    assert abs(k - 240) < 60
    assert torch.equal(c.y_train[~c.corrupted], digits.y_train[~c.corrupted])
    changed = (c.y_train != digits.y_train).float().mean().item()
    assert abs(changed - 0.4 * 0.9) < 0.1  # a re-drawn label keeps its class with probability 1/10
    assert torch.equal(c.y_test, digits.y_test) and torch.equal(c.x_test, digits.x_test)
    assert torch.equal(c.y_train_clean, digits.y_train)
    assert torch.equal(c.x_train, digits.x_train)


def test_corruption_is_fixed_per_seed(digits):
    a, b, d = (D.corrupt(digits, "random_labels", seed=s) for s in (7, 7, 8))
    assert torch.equal(a.y_train, b.y_train) and not torch.equal(a.y_train, d.y_train)
    assert a.corrupted.all()


def test_random_labels_are_near_uniform(digits):
    c = D.corrupt(digits, "random_labels", seed=0)
    counts = torch.bincount(c.y_train, minlength=10).float()
    assert counts.min() > 30 and counts.max() < 95  # 60 expected per class
    assert (c.y_train == digits.y_train).float().mean() < 0.2


def continuous(n=50, nt=20):
    """A tiny dataset of continuous random images: every pixel value is unique, so permutations can be read off."""
    g = torch.Generator().manual_seed(0)
    x, xt = torch.rand(n, 1, 4, 4, generator=g), torch.rand(nt, 1, 4, 4, generator=g)
    y, yt = torch.randint(0, 10, (n,), generator=g), torch.randint(0, 10, (nt,), generator=g)
    return D.Dataset("toy", x, y, xt, yt, 10, torch.arange(n), torch.arange(nt),
                     y.clone(), torch.zeros(n, dtype=torch.bool))


def recover_perm(before, after):
    """Brute force: for each output position, the input position holding the same value."""
    return [int((before == v).nonzero()) for v in after]


def test_shuffled_pixels_one_permutation_train_and_test():
    ds = continuous()
    c = D.corrupt(ds, "shuffled_pixels", seed=0)
    flat, cflat = ds.x_train.reshape(50, -1), c.x_train.reshape(50, -1)
    perm = recover_perm(flat[0], cflat[0])
    assert perm != list(range(16))
    assert torch.equal(cflat, flat[:, perm])
    assert torch.equal(c.x_test.reshape(20, -1), ds.x_test.reshape(20, -1)[:, perm])
    assert torch.equal(c.y_train, ds.y_train)


def test_random_pixels_permute_each_image_differently():
    ds = continuous()
    c = D.corrupt(ds, "random_pixels", seed=0)
    flat, cflat = ds.x_train.reshape(50, -1), c.x_train.reshape(50, -1)
    perms = {tuple(recover_perm(flat[i], cflat[i])) for i in range(50)}
    assert len(perms) == 50  # a permutation per image
    assert torch.equal(c.x_test, ds.x_test) and torch.equal(c.y_train, ds.y_train)


def test_gaussian_matches_mean_and_variance(digits):
    c = D.corrupt(digits, "gaussian", seed=0)
    assert abs(c.x_train.mean() - digits.x_train.mean()) < 0.01
    assert abs(c.x_train.std() - digits.x_train.std()) < 0.01
    assert not torch.equal(c.x_train, digits.x_train) and torch.equal(c.x_test, digits.x_test)
    t = D.corrupt(digits, "gaussian", seed=0, corrupt_test=True)
    assert not torch.equal(t.x_test, digits.x_test)


@pytest.mark.parametrize("kind", ["randX", "randY"])
def test_fraction_corruptions_exact_count(digits, kind):
    c = D.corrupt(digits, kind, 0.25, seed=0)
    assert int(c.corrupted.sum()) == 150
    if kind == "randX":
        assert torch.equal(c.x_train[~c.corrupted], digits.x_train[~c.corrupted])
        assert not torch.equal(c.x_train[c.corrupted], digits.x_train[c.corrupted])
        assert torch.equal(c.y_train, digits.y_train)
    else:
        assert torch.equal(c.y_train[~c.corrupted], digits.y_train[~c.corrupted])
        assert torch.equal(c.x_train, digits.x_train)


@pytest.mark.parametrize("kind, level, words", [
    ("label_noise", 1.5, ["level=1.5", "[0, 1]"]),
    ("label_noise", -0.1, ["level=-0.1"]),
    ("blur", 0.5, ["kind='blur'", "label_noise"]),
])
def test_corrupt_errors(digits, kind, level, words):
    with pytest.raises(ValueError) as e:
        D.corrupt(digits, kind, level)
    assert all(w in str(e.value) for w in words)


def test_per_image_whiten_and_crop_against_numpy():
    rng = np.random.default_rng(0)
    x = rng.random((3, 3, 32, 32)).astype(np.float32)
    x[2] = 0.5  # constant image: std floored at 1/sqrt(n) like TensorFlow
    out = D.per_image_whiten(D.center_crop(torch.tensor(x), 28)).numpy()
    crop = x[:, :, 2:30, 2:30].reshape(3, -1)
    n = crop.shape[1]
    ref = (crop - crop.mean(1, keepdims=True)) / np.maximum(crop.std(1, keepdims=True), 1 / np.sqrt(n))
    np.testing.assert_allclose(out.reshape(3, -1), ref, atol=1e-5)
    with pytest.raises(ValueError, match="size=40"):
        D.center_crop(torch.tensor(x), 40)


def test_subset_is_nested_and_seeded(digits):
    a, b = D.subset(digits, 100, seed=3), D.subset(digits, 250, seed=3)
    assert torch.equal(b.train_index[:100], a.train_index)  # nested
    assert not torch.equal(D.subset(digits, 100, seed=4).train_index, a.train_index)
    ref = load_digits()
    np.testing.assert_array_equal(b.y_train.numpy(), ref.target[b.train_index.numpy()])
    assert torch.equal(a.x_test, digits.x_test)
    with pytest.raises(ValueError, match="n=601"):
        D.subset(digits, 601)


# ----------------------------------------------------------------------------- audio in the registry

def test_audio_is_a_sequence_dataset_with_a_fixed_split_and_seeded_subsets():
    a = D.load("audio", n_train=200, n_test=50, seed=0)
    b = D.load("audio", n_train=200, n_test=50, seed=1)
    assert a.x_train.shape == (200, 32, 32) and a.x_test.shape == (50, 32, 32) and a.num_classes == 10
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert not torch.equal(a.train_index, b.train_index)  # the seed picks the subset …
    from memlib.audio import synthetic_source
    x, y, *_ = synthetic_source(2000, 500)
    assert torch.equal(a.x_train, x[a.train_index]) and torch.equal(a.y_train, y[a.train_index])  # … of one fixed set


def test_fsdd_through_the_registry_and_its_offline_message(tmp_path, monkeypatch):
    src = SHARED_DATA / "fsdd"
    if not src.exists():
        pytest.skip(f"real FSDD files not found in {src}")
    root = tmp_path / "data"
    shutil.copytree(src, root / "fsdd")
    monkeypatch.setenv("MEMLIB_DATA", str(root))
    ds = D.load("fsdd", n_train=None, n_test=None, seed=0)
    assert ds.x_train.shape[:2] == (2700, 32) and ds.x_test.shape[:2] == (300, 32)
    assert torch.equal(torch.bincount(ds.y_test), torch.full((10,), 30))  # 6 speakers × takes 0–4 per digit
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("MEMLIB_DATA", str(empty))
    with pytest.raises(FileNotFoundError, match="fsdd") as e:
        D.load("fsdd", n_train=10, seed=0)
    assert "MEMLIB_DATA" in str(e.value) and str(empty) in str(e.value)
