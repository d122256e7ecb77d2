import gzip
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from signal_noise import data as D
from signal_noise.errors import UserError


def test_idx_round_trip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    D.write_idx(tmp_path / "a", arr)
    back = D.read_idx(tmp_path / "a")
    assert back.shape == (2, 3, 4) and np.array_equal(back, arr)
    raw = (tmp_path / "a").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 2


def test_idx_truncated_is_named(tmp_path):
    D.write_idx(tmp_path / "a", np.zeros((5, 4), np.uint8))
    (tmp_path / "a").write_bytes((tmp_path / "a").read_bytes()[:-3])
    with pytest.raises(UserError, match="a: IDX size mismatch"):
        D.read_idx(tmp_path / "a")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/signal_noise_pwned",))


def test_restricted_unpickler_refuses_code():
    blob = pickle.dumps(_Evil(), protocol=2)
    with pytest.raises(UserError, match="refusing to unpickle (posix|os).system"):
        D.restricted_load(blob)
    assert not os.path.exists("/tmp/signal_noise_pwned")


def test_restricted_unpickler_reads_numpy_arrays():
    payload = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2])),)
    back = D.restricted_load(pickle.dumps(payload, protocol=2))
    assert np.array_equal(back[0][0], payload[0][0]) and back[0][1].tolist() == [1, 2]


def test_official_files_verified(mnist_root):
    D.verify_raw(mnist_root)  # every MD5 matches
    from torchvision.datasets import MNIST

    ds = MNIST(mnist_root, train=False, download=False)
    assert len(ds) == 10000


def _copy_raw(mnist_root, dest):
    raw = D.raw_dir(dest)
    raw.mkdir(parents=True)
    for name in D.OFFICIAL_MD5:
        (raw / name).write_bytes((D.raw_dir(mnist_root) / name).read_bytes())
    return raw


def test_corrupt_and_truncated_files_are_named(mnist_root, tmp_path):
    raw = _copy_raw(mnist_root, tmp_path)
    target = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(target.read_bytes())
    blob[100] ^= 1
    target.write_bytes(bytes(blob))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte: MD5 .* not the official"):
        D.ensure_mnist(tmp_path, log=lambda *a: None)
    target.write_bytes(bytes(blob[:-10]))
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte"):
        D.ensure_mnist(tmp_path, log=lambda *a: None)
    assert target.exists()  # the user's file is reported, not deleted


def test_wheel_with_wrong_hash_is_refused(tmp_path):
    fake = tmp_path / D.WHEEL_NAME
    with zipfile.ZipFile(fake, "w") as zf:
        zf.writestr(D.WHEEL_MEMBER, gzip.compress(pickle.dumps(((), (), ()), protocol=2)))
    with pytest.raises(UserError, match="sha256 .* is not the pinned"):
        D.ensure_mnist(tmp_path / "data", wheel=fake, log=lambda *a: None)
    assert not D.raw_dir(tmp_path / "data").exists() or not any(D.raw_dir(tmp_path / "data").iterdir())


def test_rebuild_from_wheel_is_bit_exact(mnist_root, tmp_path):
    wheel = os.path.join(mnist_root, "downloads", D.WHEEL_NAME)
    if not os.path.exists(wheel):
        pytest.skip("data/ was filled by torchvision's download, not from the wheel")
    D.ensure_mnist(tmp_path, wheel=wheel, log=lambda *a: None)
    for name, md5 in D.OFFICIAL_MD5.items():
        assert D.md5_of(D.raw_dir(tmp_path) / name) == md5
    assert not [p for p in D.raw_dir(tmp_path).iterdir() if p.name.startswith(".")]  # no temp files left


def test_balanced_subset():
    labels = np.array([0, 0, 1, 2, 1, 0, 2, 2, 2])
    order = D.balanced_order(labels, n_classes=3)
    assert order.tolist() == [0, 2, 3, 1, 4, 6, 5, 7, 8]
    assert D.subset_indices(labels, 4).tolist() == [0, 1, 2, 3]
    assert D.subset_indices(labels, 9).tolist() == list(range(9))
    with pytest.raises(UserError):
        D.subset_indices(labels, 0)


def test_load_split_subset_is_balanced_and_scaled(mnist_root):
    x, y = D.load_split(mnist_root, train=False, n=500)
    assert x.shape == (500, 28, 28) and float(x.max()) == 1.0 and float(x.min()) == 0.0
    assert np.bincount(y.numpy()).tolist() == [50] * 10
