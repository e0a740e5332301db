"""MNIST-format data: an IDX reader that checks what it reads, where data sets live, how
they are downloaded, the order batches are drawn in, and the augmentation's distortions."""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

import numpy as np

# IDX type byte -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DATASETS = ("mnist", "fashion-mnist")

# md5 of each file's uncompressed content. MNIST's are the published ones; Fashion-MNIST's
# were taken from Debian's dataset-fashion-mnist (upstream git 2020-05-23).
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://dataset.bj.bcebos.com/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}


class DataError(Exception):
    """A data file is missing, truncated or not what it claims to be."""


# The most read_idx accepts by default, header included: MNIST's and Fashion-MNIST's training
# images are the largest files it is given (47,040,016 bytes), and 128 MiB leaves room for
# bigger IDX sets (EMNIST's letters are 70 MB) while a header that lies cannot make it
# allocate gigabytes.
MAX_IDX_BYTES = 128 * 2**20
_CHUNK = 2**20  # bytes decompressed or read per step


class _Gunzip:
    """A gzip file's content, read incrementally: zlib parses each member's header and checks its
    CRC; concatenated members are read in turn, as gzip.decompress does."""

    def __init__(self, f):
        self.f, self.pending = f, b""
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer only at the end of the content); never decompresses more than n."""
        parts = []
        while n > 0:
            if self.d.eof:  # a member ended: another may follow (what was fed and not used is in unused_data)
                self.pending = self.d.unused_data or self.f.read(_CHUNK)
                if not self.pending:
                    break
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if not self.pending:
                self.pending = self.f.read(_CHUNK)
                if not self.pending:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
            data = self.d.decompress(self.pending, n)
            self.pending = self.d.unconsumed_tail
            parts.append(data)
            n -= len(data)
        return b"".join(parts)


def _read_body(read, size: int) -> bytearray:
    """Up to `size` bytes from `read(n)`, `_CHUNK` at a time, so that memory grows with what the
    file really holds rather than with what its header claims."""
    body = bytearray()
    while len(body) < size and (data := read(min(_CHUNK, size - len(body)))):
        body += data
    return body


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, checking magic, dimensions and length.

    The header is read first: a file whose header declares more than `max_bytes` (header
    included) is refused before its body is read or decompressed, and no more than the declared
    size and one byte (to see trailing bytes) is ever decompressed.

    Args:
        max_bytes: the largest (uncompressed) file accepted; default `MAX_IDX_BYTES`.
    Returns:
        The array, in native byte order, with the shape the header declares.
    Raises:
        DataError: naming the file and the problem.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            read = _Gunzip(f).read if compressed else f.read
            magic = read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
                raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'empty'})")
            ndim = magic[3]
            header = 4 + 4 * ndim
            raw_dims = read(4 * ndim)
            if ndim == 0 or len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX header ({ndim} dimensions, {4 + len(raw_dims)} bytes)")
            dims = tuple(int.from_bytes(raw_dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            body = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            expected = header + body
            if expected > max_bytes:
                raise DataError(f"{path}: header says {dims} -> {expected:,} bytes, more than the {max_bytes:,} this reader accepts")
            if not compressed and (size := os.fstat(f.fileno()).st_size) != expected:
                problem = "truncated" if size < expected else "has trailing bytes"
                raise DataError(f"{path}: {problem}: header says {dims} -> {expected} bytes, file has {size}")
            data = _read_body(read, body)
            if len(data) < body:
                raise DataError(f"{path}: truncated: header says {dims} -> {expected} bytes, file has {header + len(data)}")
            if read(1):
                raise DataError(f"{path}: has trailing bytes: header says {dims} -> {expected} bytes, file has more")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read or decompressed ({e})") from None
    try:
        array = np.frombuffer(data, dtype).reshape(dims)  # writable: a bytearray's memory
    except ValueError as e:  # more dimensions than NumPy holds, or a 0-sized shape it cannot index
        raise DataError(f"{path}: header says {dims}, which NumPy cannot hold ({e})") from None
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def cache_dir(dataset: str) -> Path:
    """Where downloads are stored: $XDG_CACHE_HOME (or ~/.cache)/lenet-parity/<dataset>."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "lenet-parity" / dataset


def dataset_dirs(dataset: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for `dataset`, in order.

    An explicit `data_dir` is the only place looked (the data set's own folder, or one
    holding `<dataset>/`). Otherwise: `$LENET_DATA/<dataset>/`, the cache, `./data/<dataset>/`,
    torchvision's and paddle's usual folders, then Debian's `/usr/share/datasets/<dataset>/`.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; choose from {', '.join(DATASETS)}")
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / dataset]
    dirs = []
    if os.environ.get("LENET_DATA"):
        dirs.append(Path(os.environ["LENET_DATA"]) / dataset)
    tv_name = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[dataset]
    dirs += [
        cache_dir(dataset),
        Path("data") / dataset,
        Path("data") / tv_name / "raw",  # torchvision.datasets.MNIST(root="data")
        Path.home() / ".cache" / "paddle" / "dataset" / dataset.replace("-", "_"),  # paddle.vision.datasets
        Path("/usr/share/datasets") / dataset,
    ]
    return dirs


def find_dataset(dataset: str, data_dir: str | os.PathLike | None = None, split: str = "test") -> Path | None:
    """The first folder of `dataset_dirs` that holds `split`'s image and label files."""
    for folder in dataset_dirs(dataset, data_dir):
        if all(_find_file(folder, stem) for stem in SPLITS[split]):
            return folder
    return None


def _content_md5(path: Path, max_bytes: int = MAX_IDX_BYTES) -> str:
    """md5 of the file's content (gunzipped when it is gzip), read a chunk at a time and never
    more than `max_bytes` of it (a downloaded file is a stranger's too); '' beyond that."""
    digest, total = hashlib.md5(), 0
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        read = _Gunzip(f).read if compressed else f.read
        while data := read(_CHUNK):
            total += len(data)
            if total > max_bytes:
                return ""
            digest.update(data)
    return digest.hexdigest()


Downloader = Callable[[str, Path], Path]  # (url, folder) -> path of the downloaded file


def download(dataset: str, folder: Path, downloader: Downloader, mirror: str | None = None) -> Path:
    """Fetch the four files of `dataset` into `folder` with `downloader`, checking each
    file's content md5 (of the uncompressed bytes, so any gzip wrapper will do).

    Args:
        mirror: base URL holding `<dataset>/<file>.gz`; default $LENET_DATA_MIRROR, else the
            data set's public mirrors.
    Raises:
        DataError: when no mirror gave every file with the right checksum.
    """
    mirror = mirror or os.environ.get("LENET_DATA_MIRROR")
    bases = [mirror.rstrip("/") + f"/{dataset}/"] if mirror else list(MIRRORS[dataset])
    errors = []
    for base in bases:
        try:
            for stem, md5 in CHECKSUMS[dataset].items():
                if (path := _find_file(folder, stem)) is not None and _content_md5(path) == md5:
                    continue
                path = Path(downloader(base + stem + ".gz", folder))
                if _content_md5(path) != md5:
                    path.unlink()
                    raise DataError(f"{base}{stem}.gz: checksum mismatch")
            return folder
        except Exception as e:  # a downloader raises whatever its library raises
            errors.append(f"{base}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    raise DataError("; ".join(errors))


def locate(dataset: str, data_dir: str | os.PathLike | None = None, downloader: Downloader | None = None) -> Path:
    """The folder holding both splits of `dataset`, downloading them if need be.

    Downloads go to `data_dir` when given, else to the cache.
    Raises:
        DataError: one line saying where the files were looked for and how to provide them.
    """
    found = [d for d in dataset_dirs(dataset, data_dir) if all(_find_file(d, s) for split in SPLITS.values() for s in split)]
    if found:
        return found[0]
    target = Path(data_dir) if data_dir is not None else cache_dir(dataset)
    reason = "no downloader is importable (torchvision or paddle)"
    if downloader is not None:
        try:
            return download(dataset, target, downloader)
        except DataError as e:
            reason = f"download failed: {e}"
    looked = ", ".join(str(d) for d in dataset_dirs(dataset, data_dir))
    names = ", ".join(f"{s}.gz" for split in SPLITS.values() for s in split)
    raise DataError(f"{dataset} not found (looked in {looked}) and {reason}; put {names} in one of those folders or pass --data-dir DIR")


def load_split(folder: str | os.PathLike, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split held in `folder`."""
    folder = Path(folder)
    paths = [_find_file(folder, stem) or folder / stem for stem in SPLITS[split]]
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{paths[0]}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{paths[1]}: {labels.shape} labels for {len(images)} images")
    if labels.max(initial=0) > 9:
        raise DataError(f"{paths[1]}: label {labels.max()} out of range 0..9")
    return images, labels.astype(np.int64)


def to_model_input(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 (N, H, W) or (N, C, H, W) pixels -> the models' input contract: float NCHW in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    return (x.astype(np.float64) / 255.0).astype(dtype)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the `n` training images in `epoch`: a function of (seed, epoch) alone,
    so a resumed run draws the same batches as an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches over n items; the last one may be smaller."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


@dataclass(frozen=True)
class Distortion:
    """Ranges of the random affine distortions (1998 paper, section III.C: translation,
    scaling, squeezing, horizontal shearing); every draw is uniform in +-range."""

    translate: float = 2.0  # pixels, each axis
    scale: float = 0.1  # size factor 1 +- scale, both axes
    squeeze: float = 0.1  # x *= 1 + s, y /= 1 + s
    shear: float = 0.2  # x += shear * y


DISTORTION = Distortion()


def affine_thetas(count: int, seed: int, epoch: int, size: int = 28, d: Distortion = DISTORTION) -> np.ndarray:
    """(count, 2, 3) float64 matrices for affine_grid (align_corners=False): output pixel
    coordinates in [-1, 1] -> where to sample the input. Drawn from (seed, epoch) alone."""
    rng = np.random.default_rng([seed, epoch, 1])
    u = rng.uniform(-1.0, 1.0, size=(count, 5))
    s = 1.0 + d.scale * u[:, 0]
    q = 1.0 + d.squeeze * u[:, 1]
    sx, sy = s * q, s / q  # forward scaling of the digit
    shear = d.shear * u[:, 2]
    tx, ty = (d.translate * u[:, 3:5] * 2.0 / size).T  # pixels -> normalised units
    # forward map A = [[sx, shear*sy], [0, sy]] plus t; the grid needs its inverse
    theta = np.zeros((count, 2, 3))
    theta[:, 0, 0] = 1.0 / sx
    theta[:, 0, 1] = -shear / sx
    theta[:, 1, 1] = 1.0 / sy
    theta[:, 0, 2] = -(theta[:, 0, 0] * tx + theta[:, 0, 1] * ty)
    theta[:, 1, 2] = -theta[:, 1, 1] * ty
    return theta


def warp_reference(images: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """NumPy affine_grid + bilinear grid_sample (zeros padding, align_corners=False), the
    computation both frameworks' augmentation must match. images (N, C, H, W)."""
    n, c, h, w = images.shape
    xs = (2 * np.arange(w) + 1) / w - 1
    ys = (2 * np.arange(h) + 1) / h - 1
    gx, gy = np.meshgrid(xs, ys)  # (H, W)
    base = np.stack([gx, gy, np.ones_like(gx)], -1)  # (H, W, 3)
    grid = np.einsum("hwk,njk->nhwj", base, theta)  # (N, H, W, 2): x, y in [-1, 1]
    px = ((grid[..., 0] + 1) * w - 1) / 2
    py = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = np.floor(px).astype(int), np.floor(py).astype(int)
    out = np.zeros((n, c, h, w), dtype=np.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(px - xi)) * (1 - np.abs(py - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            vals = images[np.arange(n)[:, None, None], :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # (N, H, W, C)
            out += np.moveaxis(vals * (weight * inside)[..., None], -1, 1)
    return out
