"""MNIST-format data: an IDX reader that checks what it reads, and where data sets live."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

# IDX type byte -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DATASETS = ("mnist", "fashion-mnist")


class DataError(Exception):
    """A data file is missing, truncated or not what it claims to be."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, checking magic, dimensions and length.

    Returns:
        The array, in native byte order, with the shape the header declares.
    Raises:
        DataError: naming the file and the problem.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot be read or decompressed ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({ndim} dimensions, {len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {problem}: header says {dims} -> {expected} bytes, file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def dataset_dirs(dataset: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for `dataset`: an explicit `data_dir` alone (the data set's own
    folder or one holding `<dataset>/`), else `$LENET_DATA/<dataset>/`."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; choose from {', '.join(DATASETS)}")
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / dataset]
    dirs = []
    if os.environ.get("LENET_DATA"):
        dirs.append(Path(os.environ["LENET_DATA"]) / dataset)
    return dirs


def find_dataset(dataset: str, data_dir: str | os.PathLike | None = None, split: str = "test") -> Path | None:
    """The first folder of `dataset_dirs` that holds `split`'s image and label files."""
    for folder in dataset_dirs(dataset, data_dir):
        if all(_find_file(folder, stem) for stem in SPLITS[split]):
            return folder
    return None


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
