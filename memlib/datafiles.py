"""The real datasets' files under ``MEMLIB_DATA``: what must be there, checked by checksum, downloaded when missing.

Each file a source needs is a :class:`DataFile` with its md5 (MNIST and Fashion-MNIST: the sums torchvision checks;
FSDD: one per recording, in ``memlib/manifests/fsdd-recordings.md5``, taken from the 3,000 recordings of the
project's reference copy). :func:`inspect` looks at the folder and sorts every file into present-and-good,
missing or damaged (present with another checksum: a partial download, a truncated copy); it creates nothing.
:func:`ensure` is what the runner calls before any kernel starts and what :func:`memlib.data.load` calls before it
reads: a damaged file is an error naming the file, the expected and the found checksum and what to do; missing files
are downloaded (unless ``MEMLIB_OFFLINE=1``) and verified before they take their final name, or the error says
which files to put where. **Nothing in MEMLIB_DATA is ever deleted or overwritten**: a download is written to a
temporary name beside its target and linked to the final name only if that name is still free.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional

from .config import data_dir

#: The Free Spoken Digit Dataset's speakers and takes per (digit, speaker) in release v1.0.10 (memlib.audio reads
#: them from here: this module is the lower layer).
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_TAKES = 50

#: Seconds a download waits for a server before it gives up (then the run is refused with the files to put where).
TIMEOUT_S = 20
#: Where each torchvision-style source is downloaded from (torchvision's own mirrors); FSDD's release archive.
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}
FSDD_ARCHIVE = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
SOURCE_FILES = ("mnist", "fashion_mnist", "cifar10", "fsdd")


@dataclasses.dataclass(frozen=True)
class DataFile:
    """A file under ``MEMLIB_DATA``: its relative ``path``, ``md5`` and ``size`` in bytes (None: not recorded), and
    optionally the name and md5 of its extracted form (torchvision extracts ``*.gz``), accepted instead of it."""

    path: str
    md5: str
    size: Optional[int] = None
    extracted: Optional[tuple[str, str]] = None

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclasses.dataclass(frozen=True)
class Damaged:
    """A file that is present with the wrong content: where it is, what was expected and what was found."""

    file: DataFile
    found: Path
    expected_md5: str
    found_md5: str
    found_size: int


@dataclasses.dataclass(frozen=True)
class Inspection:
    """What :func:`inspect` found for one source under ``root``: ``good`` files, ``missing`` ones, ``damaged`` ones."""

    name: str
    root: Path
    good: tuple[DataFile, ...]
    missing: tuple[DataFile, ...]
    damaged: tuple[Damaged, ...]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.damaged


class DamagedDataError(OSError):
    """A dataset file under ``MEMLIB_DATA`` is present but its checksum is not the expected one."""


def _idx(folder: str, sums: Iterable[tuple[str, str, int, str]]) -> tuple[DataFile, ...]:
    return tuple(DataFile(f"{folder}/{name}", md5, size, (name.removesuffix(".gz"), raw_md5))
                 for name, md5, size, raw_md5 in sums)


#: The files of each downloadable source (FSDD's come from the manifest, see :func:`files`).
_FIXED = {
    "mnist": _idx("MNIST/raw", [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422, "6bbc9ace898e44ae57da46a324031adb"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881, "a25bea736e30d166cdddb491f175f624"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877, "2646ac647ad5339dbf082846283269ea"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542, "27ae3e4e09519cfbb04c329615203637"),
    ]),
    "fashion_mnist": _idx("FashionMNIST/raw", [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880,
         "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515, "9018921c3c673c538a1fc5bad174d6f9"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102, "8181f5470baa50b63fa0f6fddb340f0a"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148, "15d484375f8d13e6eb1aabb0c3f46965"),
    ]),
    "cifar10": (DataFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170498071),),
}


@functools.lru_cache(maxsize=1)
def _fsdd_files() -> tuple[DataFile, ...]:
    text = (Path(__file__).parent / "manifests" / "fsdd-recordings.md5").read_text()
    out = []
    for line in text.splitlines():
        md5, name = line.split()
        out.append(DataFile(f"fsdd/recordings/{name}", md5))
    return tuple(out)


def files(name: str) -> tuple[DataFile, ...]:
    """The files source ``name`` needs under ``MEMLIB_DATA``; empty for embedded or generated sources."""
    if name == "fsdd":
        return _fsdd_files()
    return _FIXED.get(name, ())


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def inspect(name: str, root: Optional[Path] = None) -> Inspection:
    """Sort the files of ``name`` under ``root`` (default ``MEMLIB_DATA``) into good, missing and damaged by their md5.
    A ``*.gz`` file may be present in its extracted form instead (as torchvision leaves it). Only reads."""
    root = Path(root) if root is not None else data_dir()
    good, missing, damaged = [], [], []
    for f in files(name):
        forms = [(root / f.path, f.md5)]
        if f.extracted:
            forms.append((root / Path(f.path).parent / f.extracted[0], f.extracted[1]))
        present = [(p, md5) for p, md5 in forms if p.is_file()]
        if not present:
            missing.append(f)
            continue
        checked = [(p, md5, md5sum(p)) for p, md5 in present]
        if any(found == md5 for _, md5, found in checked):
            good.append(f)
        else:
            p, md5, found = checked[0]
            damaged.append(Damaged(f, p, md5, found, p.stat().st_size))
    return Inspection(name, root, tuple(good), tuple(missing), tuple(damaged))


def damaged_message(found: Inspection) -> str:
    """Which files are damaged, their expected and found checksums and sizes, and what to do."""
    lines = [f"dataset {found.name!r}: {len(found.damaged)} file(s) under MEMLIB_DATA={found.root} are present but "
             "damaged (their md5 is not the expected one: a partial download or a truncated copy):"]
    for d in found.damaged[:10]:
        size = f", expected {d.file.size:,} bytes" if d.file.size is not None else ""
        lines.append(f"  {d.found}: md5 expected {d.expected_md5}, found {d.found_md5} ({d.found_size:,} bytes{size})")
    if len(found.damaged) > 10:
        lines.append(f"  … and {len(found.damaged) - 10} more")
    lines.append("memlib never deletes or overwrites files in MEMLIB_DATA: replace each damaged file with a good copy "
                 "(or delete it and run again with network access to download it, checked by the same md5).")
    return "\n".join(lines)


def missing_message(found: Inspection, err: Optional[BaseException] = None) -> str:
    """Which files to put where (and why they could not be downloaded)."""
    why = "is not available offline" + (f" and could not be downloaded ({type(err).__name__}: {err})" if err else "")
    folders = sorted({str((found.root / Path(f.path).parent).resolve()) for f in found.missing})
    total = len(files(found.name))
    if found.name == "fsdd":
        first = ", ".join(f.name for f in found.missing[:3])
        return (f"dataset 'fsdd' {why}: {total - len(found.missing)} of the {total} expected files were found in "
                f"{folders[0]}/ ({len(found.missing)} missing, e.g. {first}).\n"
                f"Put the Free Spoken Digit Dataset recordings in {folders[0]}/ :\n"
                f"  {{digit}}_{{speaker}}_{{index}}.wav — digits 0–9, speakers {', '.join(sorted(FSDD_SPEAKERS))}, "
                f"indices 0–{FSDD_TAKES - 1}: {total} mono 8 kHz wav files "
                "(github.com/Jakobovski/free-spoken-digit-dataset, folder recordings/).\n"
                f"(MEMLIB_DATA={found.root}; set the MEMLIB_DATA environment variable to use another folder.)")
    names = "\n  ".join(f.name for f in found.missing)
    return (f"dataset {found.name!r} {why}.\nPut these files in {folders[0]}/ :\n  {names}"
            f"\n(MEMLIB_DATA={found.root}; set the MEMLIB_DATA environment variable to use another folder.)")


def offline() -> bool:
    """True when ``MEMLIB_OFFLINE`` is set to something other than ``""``/``0``: no download is attempted."""
    return os.environ.get("MEMLIB_OFFLINE", "") not in ("", "0")


def _copy(r, out: io.BufferedWriter, progress: Optional[Callable[[int, Optional[int]], None]]) -> None:
    total = r.headers.get("Content-Length")
    total = int(total) if total and total.isdigit() else None
    done = 0
    while block := r.read(1 << 20):
        out.write(block)
        done += len(block)
        if progress:
            progress(done, total)


def _place(target: Path, data_path: Path) -> None:
    """Give the verified temporary file ``data_path`` the name ``target`` unless it is taken (never overwrite)."""
    try:
        os.link(data_path, target)
    except FileExistsError:
        pass  # another process placed it meanwhile; theirs is checked by the next inspect
    finally:
        data_path.unlink(missing_ok=True)


def _verified_temp(folder: Path, name: str, write: Callable[[io.BufferedWriter], None], md5: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        found = md5sum(tmp)
        if found != md5:
            raise DamagedDataError(f"the download of {name} has md5 {found}, expected {md5}; nothing was kept")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _progress_printer(label: str) -> Callable[[int, Optional[int]], None]:
    def show(done: int, total: Optional[int]) -> None:
        of = f" of {total / 1e6:.1f}" if total else ""
        print(f"\r  downloading {label}: {done / 1e6:.1f}{of} MB", end="", file=sys.stderr, flush=True)
    return show


def download(found: Inspection, urls: Optional[dict] = None, archive: Optional[str] = None,
             progress: bool = True) -> None:
    """Download the ``missing`` files of an inspection into ``found.root``, each verified by md5 before it takes its
    final name. ``urls`` (mirror prefixes per source) and ``archive`` (FSDD's tarball) default to the real ones."""
    if found.name == "fsdd":
        _download_fsdd(found, archive or FSDD_ARCHIVE, progress)
        return
    mirrors = (urls or MIRRORS)[found.name]
    for f in found.missing:
        target = found.root / f.path
        err: Optional[BaseException] = None
        for prefix in mirrors:
            show = _progress_printer(f.name) if progress else None
            try:  # the folder is made only once the server answers: a failed download leaves nothing behind
                with urllib.request.urlopen(prefix + f.name, timeout=TIMEOUT_S) as r:
                    tmp = _verified_temp(target.parent, f.name, lambda out: _copy(r, out, show), f.md5)
            except (OSError, ValueError) as e:  # URLError and timeouts are OSErrors; a bad URL a ValueError
                err = e
                continue
            finally:
                if show:
                    print(file=sys.stderr)
            _place(target, tmp)
            err = None
            break
        if err is not None:
            raise err


def _download_fsdd(found: Inspection, archive: str, progress: bool) -> None:
    wanted = {f.name: f for f in found.missing}
    folder = found.root / "fsdd" / "recordings"
    with tempfile.TemporaryFile() as buf, urllib.request.urlopen(archive, timeout=TIMEOUT_S) as r:
        _copy(r, buf, _progress_printer("FSDD archive") if progress else None)
        if progress:
            print(file=sys.stderr)
        buf.seek(0)
        with tarfile.open(fileobj=buf, mode="r:*") as tar:
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or len(parts) < 2 or parts[-2] != "recordings" or parts[-1] not in wanted:
                    continue
                data = tar.extractfile(member).read()
                f = wanted.pop(parts[-1])
                tmp = _verified_temp(folder, f.name, lambda out: out.write(data), f.md5)
                _place(folder / f.name, tmp)
    if wanted:
        raise FileNotFoundError(f"the FSDD archive {archive} lacks {len(wanted)} of the needed recordings, "
                                f"e.g. {sorted(wanted)[:3]}")


def ensure(name: str, root: Optional[Path] = None, allow_download: Optional[bool] = None,
           progress: bool = True) -> Inspection:
    """Make sure every file of ``name`` is present and good under ``root`` (default ``MEMLIB_DATA``).

    Damaged files raise :class:`DamagedDataError` (which file, expected and found md5, what to do) — before any
    download. Missing files are downloaded when ``allow_download`` (default: unless ``MEMLIB_OFFLINE`` is set) and
    verified; when that is off or fails, FileNotFoundError names the files to put where. Returns the inspection."""
    if name not in SOURCE_FILES:
        return inspect(name, root)
    found = inspect(name, root)
    if found.damaged:
        raise DamagedDataError(damaged_message(found))
    if not found.missing:
        return found
    if allow_download is None:
        allow_download = not offline()
    if not allow_download:
        raise FileNotFoundError(missing_message(found))
    try:
        download(found, progress=progress)
    except (OSError, ValueError, tarfile.TarError) as err:
        raise FileNotFoundError(missing_message(inspect(name, root), err)) from err
    after = inspect(name, root)
    if after.damaged:
        raise DamagedDataError(damaged_message(after))
    if after.missing:
        raise FileNotFoundError(missing_message(after))
    return after
