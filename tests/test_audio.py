"""memlib.audio: synthetic words, the log-mel front end (against a numpy STFT and a hand-built HTK
filterbank), and FSDD read from a private copy of ../shared/data/fsdd (against the `wave` module)."""
import re
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from memlib import audio

SHARED_FSDD = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fsdd"


# ----------------------------------------------------------------------------- synthetic clips

def test_synthetic_shapes_balance_and_range():
    w, y = audio.synthetic_clips(4, sample_rate=8000, duration=0.5)
    assert w.shape == (40, 4000) and w.dtype == torch.float32
    assert y.shape == (40,) and y.dtype == torch.int64
    assert torch.isfinite(w).all() and w.abs().max() <= 1.0
    assert torch.bincount(y, minlength=10).tolist() == [4] * 10
    assert (w.std(1) > 1e-3).all()  # every clip has a signal
    w2, _ = audio.synthetic_clips(1, sample_rate=16000, duration=0.25)
    assert w2.shape == (10, 4000)


def test_synthetic_deterministic_per_seed_and_prefix_stable():
    a, ya = audio.synthetic_clips(3, seed=7)
    b, yb = audio.synthetic_clips(3, seed=7)
    c, _ = audio.synthetic_clips(3, seed=8)
    assert torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.allclose(a, c)
    longer, y_long = audio.synthetic_clips(5, seed=7)  # clip i depends only on (seed, i)
    torch.testing.assert_close(longer[:30], a, rtol=0, atol=1e-6)
    assert torch.equal(y_long[:30], ya)


def test_synthetic_uses_no_global_rng():
    np_state, torch_state = np.random.get_state(), torch.random.get_rng_state()
    audio.synthetic_clips(2, seed=3)
    after = np.random.get_state()
    assert all(np.array_equal(p, q) if isinstance(p, np.ndarray) else p == q for p, q in zip(np_state, after))
    assert torch.equal(torch_state, torch.random.get_rng_state())


@pytest.mark.parametrize("kwargs, word", [({"n_per_class": 0}, "n_per_class=0"),
                                          ({"n_per_class": 2.5}, "n_per_class=2.5"),
                                          ({"n_per_class": 1, "seed": -1}, "seed=-1"),
                                          ({"n_per_class": 1, "duration": 0.0}, "duration=0.0"),
                                          ({"n_per_class": 1, "sample_rate": 0}, "sample_rate=0"),
                                          ({"n_per_class": 1, "sample_rate": 4000}, "sample_rate=4000")])
def test_synthetic_rejects_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=re.escape(word)):
        audio.synthetic_clips(**kwargs)


def test_synthetic_is_learnable_but_not_trivial():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    w, y = audio.synthetic_clips(60, seed=123)
    x = audio.log_mel(w, 8000).reshape(len(y), -1).numpy()
    y = y.numpy()
    n_fit = 400
    scaler = StandardScaler().fit(x[:n_fit])
    with threadpool_limits(1):  # a multi-threaded BLAS on shared cores is 100× slower here
        clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x[:n_fit]), y[:n_fit])
    acc = clf.score(scaler.transform(x[n_fit:]), y[n_fit:])
    assert 0.5 <= acc < 0.98, acc  # chance is 0.1; measured 0.72


def test_synthetic_source_contract():
    x, y, xt, yt, i_tr, i_te = audio.synthetic_source(95, 40)
    assert x.shape == (95, 32, 32) and xt.shape == (40, 32, 32)
    assert x.dtype == xt.dtype == torch.float32 and y.dtype == yt.dtype == torch.int64
    assert torch.equal(i_tr, torch.arange(95)) and torch.equal(i_te, torch.arange(40))
    assert torch.bincount(yt, minlength=10).tolist() == [4] * 10
    assert torch.equal(y, torch.arange(95) % 10)
    # training rows are the log-mels of the first clips of the SYNTH_SEED stream; test a separate stream
    w, _ = audio.synthetic_clips(10, seed=audio.SYNTH_SEED)
    torch.testing.assert_close(x, audio.log_mel(w[:95], 8000))
    assert not torch.allclose(x[:40], xt)
    with pytest.raises(ValueError, match="n_train_total=0"):
        audio.synthetic_source(0, 10)


# ----------------------------------------------------------------------------- log-mel oracle

def _htk_filterbank(n_freqs: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """Triangular HTK mel filters (n_freqs, n_mels), no normalisation, written out by hand."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(0.0), mel(sample_rate / 2), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_freqs)
    fb = np.zeros((n_freqs, n_mels))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rise = (freqs - lo) / (mid - lo)
        fall = (hi - freqs) / (hi - mid)
        fb[:, m] = np.clip(np.minimum(rise, fall), 0.0, None)
    return fb


def _numpy_log_mel(x: np.ndarray, sample_rate: int, n_mels: int, n_fft: int, hop: int) -> np.ndarray:
    pad = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    n_frames = 1 + (pad.shape[1] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(pad[:, idx] * window, axis=-1)) ** 2  # (N, frames, freqs)
    melspec = power @ _htk_filterbank(n_fft // 2 + 1, n_mels, sample_rate)
    return 10.0 * np.log10(np.maximum(melspec, 1e-10)).transpose(0, 2, 1)


def test_log_mel_matches_numpy_stft_and_hand_filterbank():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1000)) * np.array([[0.01], [0.3], [1.0]])
    got = audio.log_mel(torch.tensor(x, dtype=torch.float32), 8000, n_mels=20, n_fft=128, hop_length=50)
    ref = _numpy_log_mel(x, 8000, 20, 128, 50)
    assert got.shape == ref.shape == (3, 20, 1 + 1000 // 50) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-3, rtol=0)


def test_log_mel_pure_sine_peaks_in_its_band_and_floor():
    sr, f = 8000, 1000.0  # 1000 Hz is FFT bin 32 of 256 at 8 kHz
    t = np.arange(4000) / sr
    x = torch.tensor(np.sin(2 * np.pi * f * t)[None], dtype=torch.float32)
    spec = audio.log_mel(x, sr)  # defaults: 32 bands, n_fft 256, hop 128
    assert spec.shape == (1, 32, 32)
    fb = _htk_filterbank(129, 32, sr)
    band = int(np.argmax(fb[32]))  # the band whose triangle is highest at 1000 Hz
    assert int(spec[0].mean(1).argmax()) == band
    # silence hits the documented −100 dB floor
    assert torch.all(audio.log_mel(torch.zeros(1, 1000), sr) == -100.0)


def test_log_mel_rejects_bad_input():
    with pytest.raises(ValueError, match="n_mels=0"):
        audio.log_mel(torch.zeros(1, 1000), 8000, n_mels=0)
    with pytest.raises(ValueError, match="shape"):
        audio.log_mel(torch.zeros(1000), 8000)


# ----------------------------------------------------------------------------- FSDD

_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@pytest.fixture(scope="module")
def fsdd_root(tmp_path_factory) -> Path:
    """A private copy of ../shared/data/fsdd (never written to)."""
    if not (SHARED_FSDD / "recordings").is_dir():
        pytest.skip(f"real FSDD files not found at {SHARED_FSDD}/recordings (needed for the FSDD tests)")
    root = tmp_path_factory.mktemp("memlib_data")
    shutil.copytree(SHARED_FSDD / "recordings", root / "fsdd" / "recordings")
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


def _read_with_wave(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as fh:
        assert fh.getnchannels() == 1 and fh.getsampwidth() == 2 and fh.getframerate() == 8000
        return np.frombuffer(fh.readframes(fh.getnframes()), dtype="<i2").astype(np.float64) / 32768.0


def _listing(root: Path):
    """(digit, speaker, index, name) of every file, parsed and sorted here, split by index < 5."""
    rows = []
    for p in (root / "fsdd" / "recordings").iterdir():
        m = _NAME.match(p.name)
        if m:
            rows.append((int(m.group(1)), m.group(2), int(m.group(3)), p.name))
    rows.sort()
    return [r for r in rows if r[2] >= 5], [r for r in rows if r[2] < 5]


def test_fsdd_split_order_and_labels(fsdd_root, monkeypatch):
    monkeypatch.setenv("MEMLIB_DATA", str(fsdd_root))
    x, y, xt, yt, i_tr, i_te = audio.fsdd_source()  # root from MEMLIB_DATA
    train, test = _listing(fsdd_root)
    assert len(train) == 2700 and len(test) == 300
    assert x.shape == (2700, 32, 63) and xt.shape == (300, 32, 63) and x.dtype == torch.float32
    assert y.dtype == yt.dtype == torch.int64
    assert y.tolist() == [d for d, _, _, _ in train] and yt.tolist() == [d for d, _, _, _ in test]
    assert torch.equal(i_tr, torch.arange(2700)) and torch.equal(i_te, torch.arange(300))
    assert [audio.fsdd_file_name(k) for k in audio.fsdd_keys("test")] == [n for *_, n in test]
    assert [audio.fsdd_file_name(k) for k in audio.fsdd_keys("train")] == [n for *_, n in train]
    assert torch.isfinite(x).all() and torch.isfinite(xt).all()
    assert audio.fsdd_source(fsdd_root)[0] is x  # cached


def test_fsdd_samples_against_wave_module(fsdd_root):
    w, y, wt, yt = audio.fsdd_waveforms(fsdd_root)
    train, test = _listing(fsdd_root)
    lengths = [len(_read_with_wave(fsdd_root / "fsdd" / "recordings" / n)) for *_, n in train]
    rows = {0, int(np.argmax(lengths)), int(np.argmin(lengths)), 1234}
    for r in rows:
        ref = _read_with_wave(fsdd_root / "fsdd" / "recordings" / train[r][3])
        m = min(len(ref), 8000)
        np.testing.assert_allclose(w[r, :m].numpy(), ref[:m], atol=1e-7)
        assert torch.all(w[r, m:] == 0)  # zero-padded at the end
    assert max(lengths) > 8000  # the longest clip is cropped
    ref = _read_with_wave(fsdd_root / "fsdd" / "recordings" / test[17][3])
    np.testing.assert_allclose(wt[17, :200].numpy(), ref[:200], atol=1e-7)
    padded = np.zeros(8000)
    padded[:min(8000, len(ref))] = ref[:8000]
    xt = audio.fsdd_source(fsdd_root)[2]
    np.testing.assert_allclose(xt[17].numpy(), _numpy_log_mel(padded[None], 8000, 32, 256, 128)[0], atol=2e-3)


def test_fsdd_missing_folder_names_where_and_memlib_data(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        audio.fsdd_source(tmp_path)
    msg = str(err.value)
    assert str((tmp_path / "fsdd" / "recordings").resolve()) in msg
    assert "MEMLIB_DATA" in msg and "'fsdd'" in msg and "3000" in msg and "{digit}_{speaker}_{index}.wav" in msg
    assert "0 of the 3000" in msg


def test_fsdd_one_missing_file_is_an_error(fsdd_root, tmp_path):
    folder = tmp_path / "fsdd" / "recordings"
    folder.mkdir(parents=True)
    for p in (fsdd_root / "fsdd" / "recordings").iterdir():
        if p.name != "7_theo_3.wav":
            (folder / p.name).symlink_to(p)
    with pytest.raises(FileNotFoundError, match=r"2999 of the 3000(.|\n)*7_theo_3\.wav"):
        audio.fsdd_source(tmp_path)
