"""lenet_spec.data: the IDX reader's checks and the data lookup."""

import gzip
import tracemalloc
import zlib

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


# issue 11: the reader's memory and time are bounded by max_bytes, not by what a header claims


def gzip_stream(*parts: bytes, zeros: int = 0) -> bytes:
    """gzip of `parts` followed by `zeros` zero bytes, compressed a MiB at a time (never held whole)."""
    c = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [c.compress(p) for p in parts]
    out += [c.compress(bytes(min(2**20, zeros - i))) for i in range(0, zeros, 2**20)]
    return b"".join(out) + c.flush()


def traced_peak(fn) -> int:
    """Peak bytes that Python and NumPy allocated (tracemalloc) while fn() ran; its DataError is swallowed."""
    tracemalloc.start()
    try:
        fn()
    except DataError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_header_claiming_too_much_is_refused_before_the_body_is_decompressed(tmp_path):
    header = idx_bytes(np.zeros((0, 28, 28), np.uint8))[:4] + b"".join(d.to_bytes(4, "big") for d in (1_300_000, 28, 28))
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    bomb.write_bytes(gzip_stream(header, b"\xff" * 16) + b"corrupt after the header")  # the body is never reached
    message = f"{bomb}: header says (1300000, 28, 28) -> 1,019,200,016 bytes, more than the 134,217,728 this reader accepts"
    with pytest.raises(DataError) as info:
        read_idx(bomb)
    assert str(info.value) == message
    raw = tmp_path / "bomb-idx3-ubyte"
    raw.write_bytes(header + bytes(100))
    with pytest.raises(DataError, match="more than the 134,217,728"):
        read_idx(raw)
    # the bound is max_bytes, header included; 47,040,016 is MNIST's training images
    images = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    (tmp_path / "ten.gz").write_bytes(gzip.compress(images))
    assert read_idx(tmp_path / "ten.gz", max_bytes=len(images)).shape == (10, 28, 28)
    with pytest.raises(DataError, match="-> 7,856 bytes, more than the 7,855 this reader accepts"):
        read_idx(tmp_path / "ten.gz", max_bytes=len(images) - 1)
    assert read_idx.__defaults__[0] >= 47_040_016


def test_sizes_that_overflow_64_bits_are_refused(tmp_path):
    header = bytes([0, 0, 0x0E, 3]) + (2**32 - 1).to_bytes(4, "big") * 3  # float64 (2^32-1)^3: 2^99 bytes
    (tmp_path / "raw-idx").write_bytes(header + bytes(8))
    (tmp_path / "z-idx.gz").write_bytes(gzip.compress(header + bytes(8)))
    for name in ("raw-idx", "z-idx.gz"):
        with pytest.raises(DataError, match=r"-> 633,825,299,671,392,843,082,401,579,016 bytes, more than the 134,217,728"):
            read_idx(tmp_path / name)
    zero = bytes([0, 0, 0x08, 3, 0, 0, 0, 0]) + (2**32 - 1).to_bytes(4, "big") * 2  # 0 elements, but a shape NumPy cannot hold
    (tmp_path / "zero-idx").write_bytes(zero)
    with pytest.raises(DataError, match="NumPy cannot hold"):
        read_idx(tmp_path / "zero-idx")


def test_decompresses_no_more_than_the_declared_size(tmp_path):
    small = idx_bytes(np.ones((2, 28, 28), np.uint8))
    (tmp_path / "long.gz").write_bytes(gzip_stream(small, zeros=64 * 2**20))  # 64 MiB of trailing zeros in 64 KB
    peak = traced_peak(lambda: read_idx(tmp_path / "long.gz"))
    with pytest.raises(DataError, match="has trailing bytes: header says \\(2, 28, 28\\) -> 1584 bytes, file has more"):
        read_idx(tmp_path / "long.gz")
    assert peak < 4 * 2**20, peak  # measured: about 1 MiB (one chunk)
    # a header that claims 100 MiB over a short stream: memory follows the bytes that are there
    claims = bytes([0, 0, 0x08, 1]) + (100 * 2**20).to_bytes(4, "big")
    (tmp_path / "short.gz").write_bytes(gzip_stream(claims, zeros=2**20))
    assert traced_peak(lambda: read_idx(tmp_path / "short.gz")) < 8 * 2**20
    with pytest.raises(DataError, match=f"truncated: header says \\(104857600,\\) -> 104857608 bytes, file has {2**20 + 8}"):
        read_idx(tmp_path / "short.gz")


def test_gzip_members_types_and_corruption(tmp_path):
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    raw = idx_bytes(a, 0x0C)
    (tmp_path / "two-members.gz").write_bytes(gzip.compress(raw[:10]) + gzip.compress(raw[10:]))  # concatenated, as gzip.decompress reads them
    got = read_idx(tmp_path / "two-members.gz")
    np.testing.assert_array_equal(got, a)
    assert got.dtype == np.int32 and got.dtype.isnative and got.flags.writeable
    f = np.array([[1.5, -2.25], [np.pi, 0]], ">f8")
    (tmp_path / "f8").write_bytes(bytes([0, 0, 0x0E, 2]) + b"".join(int(d).to_bytes(4, "big") for d in f.shape) + f.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "f8"), f)
    z = bytearray(gzip.compress(raw))
    z[12:16] = b"\xff\xff\xff\xff"  # damaged deflate data: zlib.error, a traceback before
    z2 = bytearray(gzip.compress(raw))
    z2[-8] ^= 1  # wrong CRC
    for name, content in (("deflate.gz", z), ("crc.gz", z2), ("cut.gz", gzip.compress(raw)[:-4])):
        (tmp_path / name).write_bytes(bytes(content))
        with pytest.raises(DataError, match="cannot be read or decompressed") as info:
            read_idx(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)
