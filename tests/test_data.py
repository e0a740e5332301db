"""lenet_spec.data: the IDX reader's checks and the data lookup."""

import gzip

import numpy as np
import pytest

from lenet_spec.data import DataError, find_dataset, load_split, read_idx


def idx_bytes(array: np.ndarray, type_byte: int = 0x08) -> bytes:
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(">u1" if type_byte == 0x08 else ">i4").tobytes()


def test_reads_raw_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw").write_bytes(idx_bytes(a))
    (tmp_path / "z.gz").write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "z.gz"), a)
    b = np.array([1, -2, 300], dtype=np.int32)
    (tmp_path / "i4").write_bytes(idx_bytes(b, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "i4"), b)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "bad magic"),
        (b"\x00\x01\x08\x01" + bytes(8), "bad magic"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (idx_bytes(np.zeros((4, 5), np.uint8))[:-3], "truncated"),
        (idx_bytes(np.zeros((4, 5), np.uint8)) + b"x", "trailing bytes"),
        (b"\x1f\x8b\x08\x00garbage", "cannot be read or decompressed"),
    ],
)
def test_corrupt_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "nope")


def test_lookup_order(tmp_path, monkeypatch):
    images, labels = np.zeros((3, 28, 28), np.uint8), np.array([1, 2, 3], np.uint8)
    for folder in (tmp_path / "a" / "mnist", tmp_path / "b"):
        folder.mkdir(parents=True)
        (folder / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    monkeypatch.setenv("LENET_DATA", str(tmp_path / "a"))
    assert find_dataset("mnist") == tmp_path / "a" / "mnist"
    assert find_dataset("mnist", tmp_path / "b") == tmp_path / "b"  # --data-dir wins
    assert find_dataset("mnist", tmp_path / "a") == tmp_path / "a" / "mnist"  # a folder holding mnist/
    assert find_dataset("mnist", tmp_path) is None  # an explicit folder is the only place looked
    monkeypatch.delenv("LENET_DATA")
    assert find_dataset("mnist") is None
    x, y = load_split(tmp_path / "b", "test")
    assert x.shape == (3, 28, 28) and y.dtype == np.int64 and list(y) == [1, 2, 3]


def test_label_count_must_match(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DataError, match="2,\\) labels for 3 images"):
        load_split(tmp_path, "test")


@pytest.mark.data
def test_real_mnist(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
