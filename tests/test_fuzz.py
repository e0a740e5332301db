"""Property tests of the readers that take files from outside (issue 11): whatever bytes a file
holds, they give its content or their own one-line error, never another exception, in bounded memory.

Profiles: "ci" (the default; about a minute on two slow cores) and "long" (HYPOTHESIS_PROFILE=long).
Helpers (`memory_bound`, `one_line_or`, `mutated`, `gzipped`, the `scratch` folder) are meant for
every reader fuzzed here.
"""

import importlib.util
import io
import math
import os
import struct
import tracemalloc
import zlib
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from lenet_spec.data import DataError, read_idx

settings.register_profile("ci", max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5_000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MEMORY_LIMIT = 64 * 2**20  # bytes one example may allocate: the readers refuse every claim larger than the bytes behind it


@contextmanager
def memory_bound(limit: int = MEMORY_LIMIT):
    """Fail when what Python and NumPy allocate inside the block (tracemalloc: NumPy registers its
    buffers with it) peaks above `limit` bytes. An exception from the block passes through unchecked."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    start = tracemalloc.get_traced_memory()[0]
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        if not tracing:
            tracemalloc.stop()
    assert peak <= limit, f"allocated {peak:,} bytes at the peak, more than {limit:,}"


def one_line_or(errors, fn, *args):
    """fn(*args), or the exception of `errors` it raised, which must be one non-empty line; any other exception fails the test."""
    try:
        return fn(*args)
    except errors as e:
        assert str(e) and "\n" not in str(e), repr(str(e))
        return e


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder for the files of every example (@given cannot take function-scoped tmp_path)."""
    return tmp_path_factory.mktemp("fuzz")


# strategies


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` as it is, cut short, with bytes overwritten, with bytes inserted, or with more appended."""
    how = draw(st.sampled_from(["same", "same", "same", "cut", "overwrite", "insert", "append"]))
    if how == "cut":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "overwrite" and data:
        data = bytearray(data)
        for i in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if how == "append":
        return data + draw(st.binary(min_size=1, max_size=256))
    return data


@st.composite
def gzipped(draw, data: bytes) -> bytes:
    """`data` raw, or gzip-compressed in one or two members, maybe then damaged."""
    how = draw(st.sampled_from(["raw", "gzip", "members", "damaged"]))
    if how == "raw":
        return data
    if how == "members":
        at = draw(st.integers(0, len(data)))
        return zlib_gzip(data[:at]) + zlib_gzip(data[at:])
    z = zlib_gzip(data)
    return draw(mutated(z)) if how == "damaged" else z


def zlib_gzip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def random_bytes(draw, n: int) -> bytes:
    """n bytes from a drawn seed: quicker than st.binary for tens of kilobytes."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1))).bytes(n)


DIMS = st.one_of(st.integers(0, 40), st.integers(0, 40), st.sampled_from([0, 1, 28, 2**16, 2**31 - 1, 2**32 - 1]), st.integers(0, 2**32 - 1))
IDX_TYPES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]


@st.composite
def idx_files(draw) -> bytes:
    """An IDX header (of a valid type or any byte, any dims, maybe too few) and a body of the declared size, shorter, longer or random."""
    type_byte = draw(st.sampled_from(IDX_TYPES + [0x08] * 6) if draw(st.integers(0, 9)) else st.integers(0, 255))
    dims = draw(st.lists(DIMS, min_size=1, max_size=5))
    ndim = len(dims) if draw(st.integers(0, 9)) else draw(st.integers(0, 255))
    header = bytes([0, 0, type_byte, ndim]) + b"".join(d.to_bytes(4, "big") for d in dims)
    size = math.prod(dims) * {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(type_byte, 1)
    body = random_bytes(draw, size) if size <= 2**16 else draw(st.binary(max_size=256))
    return draw(gzipped(draw(mutated(header + body))))


@st.composite
def npy_files(draw) -> bytes:
    """np.save of a small array of pixels, or of any dtype and values, or a hand-made header (any descr, shape, version) over random bytes."""
    how = draw(st.sampled_from(["pixels", "any", "header"]))
    if how != "header":
        if how == "pixels":
            dtype = draw(st.sampled_from([np.dtype(np.uint8), np.dtype("<f4"), np.dtype(">f8"), np.dtype("<f2")]))
            values = st.integers(0, 255) if dtype == np.uint8 else st.floats(0, 1, width=8 * min(dtype.itemsize, 8))
            array = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=4, max_side=32), elements=values))
        else:
            array = draw(hnp.arrays(draw(hnp.scalar_dtypes()), hnp.array_shapes(min_dims=0, max_dims=4, max_side=30)))
        fp = io.BytesIO()
        np.save(fp, np.asfortranarray(array) if draw(st.booleans()) else array, allow_pickle=False)
        return draw(mutated(fp.getvalue()))
    descrs = ["|u1", "<f4", ">f8", "<f2", "<i2", "|b1", "<c8", "|O", "<U3", "|V4", "<M8[s]", [("a", "<i4")], ("<f4", (2,))]
    descr = draw(st.sampled_from(descrs) | st.text(max_size=8))
    shape = tuple(draw(st.lists(st.integers(-2, 40) | st.integers(0, 2**63), max_size=5)))
    text = f"{{'descr': {descr!r}, 'fortran_order': {draw(st.booleans())}, 'shape': {shape!r}, }}" if draw(st.integers(0, 9)) else draw(st.text(max_size=60))
    header = text.encode("utf-8") + b"\n"
    version = draw(st.sampled_from([(1, 0), (2, 0), (3, 0), (0, 7)]))
    length = len(header).to_bytes(2 if version == (1, 0) else 4, "little") if draw(st.integers(0, 9)) else draw(st.binary(min_size=4, max_size=4))
    try:
        size = math.prod(shape) * np.dtype(descr if isinstance(descr, (str, list, tuple)) else "u1").itemsize
    except Exception:  # NumPy raises TypeError, ValueError, even SyntaxError for a made-up descr
        size = 0
    body = random_bytes(draw, size) if 0 <= size <= 2**16 else draw(st.binary(max_size=256))
    return draw(mutated(b"\x93NUMPY" + bytes(version) + length + header + body))


PICTURE_MODES = ["L", "RGB", "RGBA", "P", "1", "LA", "I;16", "I", "F", "CMYK"]


@st.composite
def picture_files(draw) -> bytes:
    """A small picture Pillow wrote in a format predict reads, maybe damaged."""
    from PIL import Image

    fmt = draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM"]))
    mode = draw(st.sampled_from(PICTURE_MODES))
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    try:
        im = Image.new(mode, (width, height))
        im.frombytes(random_bytes(draw, len(im.tobytes())))
        fp = io.BytesIO()
        im.save(fp, fmt)
    except (OSError, ValueError, KeyError):
        assume(False)  # a mode this format cannot hold
    return draw(mutated(fp.getvalue()))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")


@st.composite
def png_headers(draw) -> bytes:
    """A PNG whose IHDR claims any size, depth and colour type, then a random (maybe compressed) IDAT."""
    width, height = draw(DIMS), draw(DIMS)
    depth = draw(st.sampled_from([1, 2, 4, 8, 16]) | st.integers(0, 255))
    colour = draw(st.sampled_from([0, 2, 3, 4, 6]) | st.integers(0, 255))
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, draw(st.integers(0, 1))))
    data = draw(st.binary(max_size=512))
    idat = png_chunk(b"IDAT", zlib.compress(data) if draw(st.booleans()) else data)
    return draw(mutated(b"\x89PNG\r\n\x1a\n" + ihdr + idat + png_chunk(b"IEND", b"")))


# lenet_spec.data.read_idx


@given(content=st.binary(max_size=4096))
def test_read_idx_any_bytes(scratch, content):
    path = scratch / "any"
    path.write_bytes(content)
    with memory_bound():
        one_line_or(DataError, read_idx, path)


@given(content=idx_files())
def test_read_idx_near_valid(scratch, content):
    path = scratch / "near-idx"
    path.write_bytes(content)
    with memory_bound():
        got = one_line_or(DataError, read_idx, path)
    event("refused" if isinstance(got, DataError) else "read")
    if isinstance(got, DataError):
        assert str(got).startswith(f"{path}: ")
    else:
        assert got.dtype.isnative and got.ndim == len(got.shape) >= 1


@given(content=idx_files(), max_bytes=st.integers(0, 2**16))
def test_read_idx_never_accepts_more_than_max_bytes(scratch, content, max_bytes):
    path = scratch / "bounded-idx"
    path.write_bytes(content)
    with memory_bound(max_bytes + 2**21):  # the array, one chunk of reading, Python's own
        got = one_line_or(DataError, read_idx, path, max_bytes)
    if isinstance(got, np.ndarray):
        assert got.nbytes + 4 + 4 * got.ndim <= max_bytes


# export.predict's per-file reading and classifying


@pytest.fixture(scope="module")
def lenet5(tmp_path_factory):
    """(session, info) of lenet5 exported from seed 0 by whichever framework is installed."""
    pytest.importorskip("onnxruntime")
    framework = next((f for f in ("paddle", "torch") if importlib.util.find_spec(f)), None)
    if framework is None:
        pytest.skip("exporting needs torch or paddle")
    from export.exporter import export, fresh
    from export.runtime import info_of, session

    report = export(fresh("lenet5", 0, framework), tmp_path_factory.mktemp("model") / "lenet5.onnx")
    sess = session(report.path, "cpu")
    return sess, info_of(sess, str(report.path))


SUFFIXES = [".npy", ".gz", ".idx", "-idx3-ubyte", ".png", ".jpg", ".bmp", ".gif", ".tif", ".webp", ".ppm", ".eps", ""]


def classify(lenet5, scratch, content: bytes, suffix: str):
    """predict_file on `content` saved under `suffix`: the records, or the InputError."""
    from export.predict import predict_file
    from export.readers import InputError

    sess, info = lenet5
    path = scratch / f"input{suffix}"
    path.write_bytes(content)
    with memory_bound():
        got = one_line_or(InputError, predict_file, sess, info, path, 3)
    event("refused: " + " ".join(str(got).split()[:2]) if isinstance(got, InputError) else "classified")
    if not isinstance(got, InputError):
        assert got and all(r["file"] == str(path) and len(r["predictions"]) == 3 for r in got)
        assert all(0 <= t["prob"] <= 1 for r in got for t in r["predictions"])
    return got


@given(content=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_predict_any_bytes(lenet5, scratch, content, suffix):
    classify(lenet5, scratch, content, suffix)


@given(content=npy_files())
@example(content=b"\x93NUMPY\x02\x008")  # a 1-byte header length: 3 bytes of the magic were read as its rest, and NumPy took 939 MB
def test_predict_npy(lenet5, scratch, content):
    classify(lenet5, scratch, content, ".npy")


@given(content=idx_files(), suffix=st.sampled_from([".gz", ".idx", "-idx3-ubyte"]))
def test_predict_idx(lenet5, scratch, content, suffix):
    classify(lenet5, scratch, content, suffix)


@given(content=picture_files() | png_headers(), suffix=st.sampled_from([".png", ".jpg", ".tif", ""]))
def test_predict_pictures(lenet5, scratch, content, suffix):
    classify(lenet5, scratch, content, suffix)


@given(content=npy_files() | picture_files(), suffix=st.sampled_from([".npy", ".png"]), colour=st.booleans())
def test_load_gives_a_checked_stack(scratch, content, suffix, colour):
    from export.preprocess import pixels
    from export.readers import InputError, MAX_PIXELS, load

    path = scratch / f"stack{suffix}"
    path.write_bytes(content)
    with memory_bound():
        got = one_line_or(InputError, load, path, colour)
        event("refused" if isinstance(got, InputError) else "read")
        if isinstance(got, np.ndarray):
            assert got.ndim == (4 if colour else 3) and (got.shape[-1] == 3 if colour else True)
            assert 0 < got.shape[1] * got.shape[2] <= MAX_PIXELS
            x = pixels(got)
            assert x.dtype == np.float32 and (x.size == 0 or (np.isfinite(x).all() and 0 <= x.min() and x.max() <= 1))


# checkpoint readers: lenet_spec.load.load_checkpoint (every command's), lenet_spec.safe_pickle

CHECKPOINT_SUFFIXES = {"torch": ".pt", "paddle": ".pdparams", "safetensors": ".safetensors"}


@pytest.fixture(scope="module")
def checkpoints():
    """A valid file of each format, as bytes: lenet5 written by this project (torch and paddle:
    a training checkpoint with optimizer and RNG state), and a .safetensors of its weights."""
    pytest.importorskip("torch")
    pytest.importorskip("paddle")
    import tempfile
    from pathlib import Path

    from lenet_paddle.train import Backend as PaddleBackend
    from lenet_spec import get_variant
    from lenet_spec.checkpoint import save_safetensors
    from lenet_spec.recipe import Recipe
    from lenet_torch.train import Backend as TorchBackend

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for kind, cls in (("torch", TorchBackend), ("paddle", PaddleBackend)):
            backend = cls(get_variant("lenet5"), Recipe(), 0)
            backend.save(Path(d) / f"c{CHECKPOINT_SUFFIXES[kind]}", epoch=1, recipe=Recipe().to_dict())
            out[kind] = (Path(d) / f"c{CHECKPOINT_SUFFIXES[kind]}").read_bytes()
        save_safetensors(Path(d) / "c.safetensors", "torch", "lenet5", TorchBackend(get_variant("lenet5"), Recipe(), 0).weights())
        out["safetensors"] = (Path(d) / "c.safetensors").read_bytes()
    return out


def read_checkpoint(scratch, content: bytes, kind: str, variant=None):
    """load_checkpoint on `content` saved as `kind`: the Checkpoint, or the CheckpointError."""
    from lenet_spec.checkpoint import CheckpointError
    from lenet_spec.load import load_checkpoint

    path = scratch / f"ckpt{CHECKPOINT_SUFFIXES[kind]}"
    path.write_bytes(content)
    with memory_bound():
        got = one_line_or(CheckpointError, load_checkpoint, path, variant)
    event(f"{kind}: " + ("refused" if isinstance(got, Exception) else "read"))
    if not isinstance(got, Exception):
        assert got.framework in ("torch", "paddle") and got.variant == "lenet5"
        assert all(v.dtype in (np.float32, np.float64) for v in got.state.values())
    return got


@given(
    content=st.binary(max_size=2048),
    kind=st.sampled_from(list(CHECKPOINT_SUFFIXES)),
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
)
def test_checkpoint_readers_any_bytes(checkpoints, scratch, content, kind, prefix):
    read_checkpoint(scratch, prefix + content, kind, "lenet5")


@given(content=st.binary(max_size=64), kind=st.just("paddle"))
@example(
    content=b"\x80\x04\x8e" + (20 * 10**9).to_bytes(8, "little") + b".", kind="paddle"
)  # a BINBYTES8 of 20 GB: the C unpickler allocated it before reading
@example(content=b"\x80\x02N" + b"r" + (2**26).to_bytes(4, "little") + b".", kind="paddle")  # LONG_BINPUT 2**26: it grew its memo table to 1 GB (15 GB seen)
def test_checkpoint_readers_declared_lengths(checkpoints, scratch, content, kind):
    read_checkpoint(scratch, content, kind, "lenet5")


@given(data=st.data(), kind=st.sampled_from(list(CHECKPOINT_SUFFIXES)))
def test_checkpoint_readers_damaged_files(checkpoints, scratch, data, kind):
    read_checkpoint(scratch, data.draw(mutated(checkpoints[kind])), kind)


# Pickle programs made of the opcodes paddle's files use, the globals safe_pickle admits and
# some it must refuse: every program gives a value or UnsafePickle, and none runs anything.
GLOBALS = [
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("_codecs", "encode"), ("builtins", "tuple"), ("collections", "OrderedDict"),
    ("paddle.base.libpaddle", "GeneratorState"), ("os", "system"), ("builtins", "eval"), ("builtins", "getattr"), ("numpy", "load"),
]  # fmt: skip
OPS = st.one_of(
    st.sampled_from(
        [b"}", b"]", b")", b"(", b"a", b"e", b"s", b"u", b"t", b"\x85", b"\x86", b"\x87", b"R", b"b", b"\x81", b"\x94", b"0", b"2", b"N", b"\x88", b"\x89"]
    ),
    st.integers(0, 255).map(lambda i: b"K" + bytes([i])),
    st.integers(0, 3).map(lambda i: b"h" + bytes([i])),  # BINGET from the memo
    st.binary(max_size=40).map(lambda b: b"C" + bytes([len(b)]) + b),  # SHORT_BINBYTES
    st.sampled_from(["b", "f4", "f8", "u1", "O8", "<", "latin1", "c1.weight", "format"]).map(lambda s: b"\x8c" + bytes([len(s)]) + s.encode()),
    st.sampled_from(GLOBALS).map(lambda g: f"c{g[0]}\n{g[1]}\n".encode()),
    st.tuples(st.integers(0, 6), st.integers(0, 2**20)).map(lambda t: b"(" + b"".join(b"J" + t[1].to_bytes(4, "little") for _ in range(t[0])) + b"t"),
)


@given(program=st.lists(OPS, max_size=60), protocol=st.sampled_from([b"\x80\x02", b"\x80\x04"]))
def test_safe_pickle_programs(program, protocol):
    from lenet_spec import safe_pickle

    data = protocol + b"".join(program) + b"."
    with memory_bound():
        got = one_line_or(safe_pickle.UnsafePickle, safe_pickle.loads, data)
    event(type(got).__name__)
