"""Data files under MEMLIB_DATA: checksums, damaged files named before any kernel, downloads verified and never
overwriting. Downloads are served from a local HTTP server (no network). Oracles: hashlib over the bytes, the files'
own bytes before and after, the independent IDX reader of conftest."""
import functools
import gzip
import hashlib
import http.server
import io
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from memlib import data as D
from memlib import datafiles
from memlib.runner.run import Refused, preflight

from conftest import ROOT, SHARED_DATA, read_idx_gz

MNIST_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.fixture
def mnist_copy(mnist_root, tmp_path) -> Path:
    """A private, writable copy of MNIST/raw (the small files; train-images too, it is what gets truncated)."""
    root = tmp_path / "data"
    shutil.copytree(mnist_root / "MNIST" / "raw", root / "MNIST" / "raw",
                    ignore=lambda d, names: [n for n in names if not n.endswith(".gz")])
    return root


@pytest.fixture
def server():
    """A local HTTP server over a temporary folder: (folder, base URL)."""
    import tempfile

    folder = Path(tempfile.mkdtemp())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    shutil.rmtree(folder)


def test_registry_matches_the_real_files(mnist_root):
    """The md5 and size recorded for every MNIST file are those of the real files (hashlib over the bytes)."""
    for f in datafiles.files("mnist"):
        raw = (mnist_root / f.path).read_bytes()
        assert (_md5(raw), len(raw)) == (f.md5, f.size)
        assert _md5(gzip.decompress(raw)) == f.extracted[1]
    assert datafiles.inspect("mnist", mnist_root).complete


@pytest.mark.skipif(not (SHARED_DATA / "fsdd" / "recordings").is_dir(), reason="../shared/data/fsdd not here")
def test_fsdd_manifest_covers_every_recording_with_its_md5():
    manifest = {f.name: f.md5 for f in datafiles.files("fsdd")}
    assert len(manifest) == 3000
    folder = SHARED_DATA / "fsdd" / "recordings"
    names = sorted(p.name for p in folder.glob("*.wav"))
    assert sorted(manifest) == names
    for name in names[::97]:  # a spread of files, hashed here
        assert _md5((folder / name).read_bytes()) == manifest[name]


def test_truncated_file_is_named_with_both_checksums_and_left_in_place(mnist_copy):
    path = mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])  # a partial download
    before = path.read_bytes()
    with pytest.raises(datafiles.DamagedDataError) as e:
        datafiles.ensure("mnist", mnist_copy, allow_download=True)
    msg = str(e.value)
    assert str(path) in msg and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in msg and _md5(before) in msg
    assert f"{len(before):,} bytes" in msg and "9,912,422" in msg
    assert "never deletes or overwrites" in msg
    assert path.read_bytes() == before  # untouched
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(MNIST_NAMES)  # no download attempted, no temp


def test_damaged_file_is_refused_before_any_kernel(mnist_copy, monkeypatch):
    path = mnist_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-100])
    monkeypatch.setenv("MEMLIB_DATA", str(mnist_copy))
    with pytest.raises(Refused) as e:
        preflight("randomization_tests", {"dataset": "mnist", "device": "cpu"})
    msg = str(e.value)
    assert "dataset='mnist'" in msg and str(path) in msg and "ec29112dd5afa0611ce80d1b7f02629c" in msg


def test_runner_refuses_a_damaged_file_fast_with_the_message(mnist_copy, tmp_path):
    """Through the command line: the run stops before a kernel (no notebook is written) and says which file."""
    path = mnist_copy / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    env = {"MEMLIB_DATA": str(mnist_copy), "MEMLIB_BUILD": str(tmp_path / "build"),
           "MEMLIB_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "MEMLIB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "memlib.runner", "randomization_tests", "--profile", "smoke",
                          "-p", "dataset", "mnist"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "damaged" in out.stderr and str(path) in out.stderr and "f68b3c2dcbeaaa9fbdd348bbdeb94873" in out.stderr
    assert not list((tmp_path / "build").rglob("*.ipynb"))


def test_missing_offline_says_which_files_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLIB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as e:
        datafiles.ensure("fashion_mnist", tmp_path / "empty")
    msg = str(e.value)
    assert str(tmp_path / "empty" / "FashionMNIST" / "raw") in msg and all(n in msg for n in MNIST_NAMES)
    assert not (tmp_path / "empty").exists()  # looking created nothing


def test_extracted_form_is_accepted_and_read(mnist_copy):
    """torchvision leaves extracted files: they are checked by their own md5 and read like the archive."""
    raw = mnist_copy / "MNIST" / "raw"
    gz = raw / "t10k-labels-idx1-ubyte.gz"
    (raw / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    assert datafiles.inspect("mnist", mnist_copy).complete
    np.testing.assert_array_equal(D.read_idx(raw / "t10k-labels-idx1-ubyte"),
                                  read_idx_gz(_gz_of(raw / "t10k-labels-idx1-ubyte")))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 20)
    assert [d.file.name for d in datafiles.inspect("mnist", mnist_copy).damaged] == ["t10k-labels-idx1-ubyte.gz"]


def _gz_of(path: Path) -> Path:
    out = path.with_suffix(".check.gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


def test_read_idx_matches_the_independent_reader(mnist_root, tmp_path):
    for name in MNIST_NAMES:
        path = mnist_root / "MNIST" / "raw" / name
        np.testing.assert_array_equal(D.read_idx(path), read_idx_gz(path))
    with pytest.raises(ValueError, match="header"):
        D.read_idx(_write(tmp_path / "bad-idx", b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x01\x02"))


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_missing_files_download_verified_and_placed(mnist_root, tmp_path, server):
    folder, url = server
    for name in MNIST_NAMES[1:]:
        shutil.copy(mnist_root / "MNIST" / "raw" / name, folder / name)
    root = tmp_path / "data"
    (root / "MNIST" / "raw").mkdir(parents=True)
    shutil.copy(mnist_root / "MNIST" / "raw" / MNIST_NAMES[0], root / "MNIST" / "raw" / MNIST_NAMES[0])
    found = datafiles.inspect("mnist", root)
    assert [f.name for f in found.missing] == MNIST_NAMES[1:]
    datafiles.download(found, urls={"mnist": (url + "nothing-here/", url)}, progress=False)  # first mirror 404s
    assert datafiles.inspect("mnist", root).complete
    for name in MNIST_NAMES:
        assert (root / "MNIST" / "raw" / name).read_bytes() == (mnist_root / "MNIST" / "raw" / name).read_bytes()
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(MNIST_NAMES)  # no temp left


def test_a_bad_download_keeps_nothing(mnist_root, tmp_path, server):
    folder, url = server
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the file")
    root = tmp_path / "data"
    found = datafiles.inspect("mnist", root)
    with pytest.raises(datafiles.DamagedDataError, match="expected ec29112dd5afa0611ce80d1b7f02629c"):
        datafiles.download(dataclass_with(found, missing=[f for f in found.missing if f.name == MNIST_NAMES[3]]),
                           urls={"mnist": (url,)}, progress=False)
    assert not list(root.rglob("*.gz")) and not list(root.rglob("*.part"))


def dataclass_with(found, missing):
    import dataclasses

    return dataclasses.replace(found, missing=tuple(missing))


def test_place_never_overwrites(tmp_path):
    target, tmp = tmp_path / "a", tmp_path / ".a.part"
    target.write_bytes(b"theirs")
    tmp.write_bytes(b"mine")
    datafiles._place(target, tmp)
    assert target.read_bytes() == b"theirs" and not tmp.exists()


@pytest.mark.skipif(not (SHARED_DATA / "fsdd" / "recordings").is_dir(), reason="../shared/data/fsdd not here")
def test_fsdd_missing_recordings_come_from_the_archive(tmp_path, server):
    folder, url = server
    src = SHARED_DATA / "fsdd" / "recordings"
    root = tmp_path / "data"
    shutil.copytree(src, root / "fsdd" / "recordings")
    gone = ["0_george_0.wav", "7_theo_31.wav", "9_yweweler_49.wav"]
    for name in gone:
        (root / "fsdd" / "recordings" / name).unlink()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in gone + ["1_lucas_3.wav"]:  # one extra that is present: never overwritten
            tar.add(src / name, arcname=f"free-spoken-digit-dataset-1.0.10/recordings/{name}")
        info = tarfile.TarInfo("free-spoken-digit-dataset-1.0.10/README.md")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    (folder / "fsdd.tar.gz").write_bytes(buf.getvalue())
    (root / "fsdd" / "recordings" / "1_lucas_3.wav").chmod(0o444)
    found = datafiles.inspect("fsdd", root)
    assert sorted(f.name for f in found.missing) == sorted(gone)
    datafiles.download(found, archive=url + "fsdd.tar.gz", progress=False)
    assert datafiles.inspect("fsdd", root).complete
    for name in gone:
        assert (root / "fsdd" / "recordings" / name).read_bytes() == (src / name).read_bytes()


def test_download_failure_becomes_the_put_files_here_message(tmp_path, monkeypatch):
    """With the network unreachable (a closed local port), ensure() says which files to put where and why."""
    monkeypatch.delenv("MEMLIB_OFFLINE", raising=False)
    monkeypatch.setattr(datafiles, "MIRRORS", {"mnist": ("http://127.0.0.1:9/",)})
    with pytest.raises(FileNotFoundError) as e:
        datafiles.ensure("mnist", tmp_path / "data", progress=False)
    msg = str(e.value)
    assert "could not be downloaded" in msg and str(tmp_path / "data" / "MNIST" / "raw") in msg
    assert not (tmp_path / "data").exists()  # a failed download leaves nothing behind


def test_manifest_ships_with_the_package():
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["memlib"]
    assert any(fnmatch.fnmatch("manifests/fsdd-recordings.md5", p) for p in patterns)
