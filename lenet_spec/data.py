"""The data sets: MNIST and Fashion-MNIST (IDX files) and CIFAR-10 (its binary version), readers
that check what they read and bound what they decode, where data sets live, how they are
downloaded, the order batches are drawn in, and the augmentation's distortions."""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

# IDX type byte -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DATASETS = ("mnist", "fashion-mnist", "cifar10")
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}  # (C, H, W) of each data set's images

# CIFAR-10's binary version (https://www.cs.toronto.edu/~kriz/cifar.html): files of fixed-size
# records, a label byte then 3,072 pixel bytes (1,024 red, then green, then blue, row by row).
# No pickle, unlike its "python version".
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"  # 170,052,171 bytes
CIFAR_FOLDER = "cifar-10-batches-bin"  # what the archive holds
CIFAR_SPLITS = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_FILE_RECORDS = 10_000  # records in each official file: the most a file may hold
CIFAR_ARCHIVE_MAX = 256 * 2**20  # bytes read from inside an archive at most (the official one unpacks to 184 MB)
CIFAR_TAR_HEADER_MAX = 64 * 2**10  # a GNU long name or pax header inside it (the official archive has none; PATH_MAX is 4,096)

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
    # md5 of the archive file itself, as published on the data set's page
    "cifar10": {CIFAR_ARCHIVE: "c32a1d4ab5d03f1284b67883e8d87530"},
}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://dataset.bj.bcebos.com/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
}


class DataError(Exception):
    """A data file is missing, truncated or not what it claims to be."""


class TooManyItems(DataError):
    """An IDX header declares more items (its first dimension) than the caller takes."""

    def __init__(self, message: str, count: int):
        super().__init__(message)
        self.count = count


MAX_SHOWN_DIMS = 6  # dimensions written out in a message; a header may declare 255


def shape_text(dims) -> str:
    """A shape for a one-line message: in full up to MAX_SHOWN_DIMS dimensions, else its count and first few."""
    dims = tuple(dims)
    if len(dims) <= MAX_SHOWN_DIMS:
        return str(dims)
    return f"{len(dims)} dimensions ({', '.join(map(str, dims[:3]))}, ...)"


def count_text(n: int) -> str:
    """A count for a one-line message: with thousands separators, or its order of magnitude past 10^40."""
    return f"{n:,}" if n < 10**40 else f"about 10^{int(math.log10(n))}"


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


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_IDX_BYTES, max_items: int | None = None) -> np.ndarray:
    """Read an IDX file, gzip-compressed or raw, checking magic, dimensions and length.

    The header is read first: a file whose header declares more than `max_bytes` (header
    included) is refused before its body is read or decompressed, and no more than the declared
    size and one byte (to see trailing bytes) is ever decompressed.

    Args:
        max_bytes: the largest (uncompressed) file accepted; default `MAX_IDX_BYTES`.
        max_items: the most items (the first dimension) accepted, checked from the header; default any.
    Returns:
        The array, in native byte order, with the shape the header declares.
    Raises:
        DataError: naming the file and the problem (TooManyItems beyond `max_items`).
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
                raise DataError(f"{path}: header says {shape_text(dims)} -> {count_text(expected)} bytes, more than the {max_bytes:,} this reader accepts")
            if max_items is not None and dims[0] > max_items:
                raise TooManyItems(f"{path}: header says {dims[0]:,} items, more than the {max_items:,} accepted", dims[0])
            says = f"header says {shape_text(dims)} -> {expected} bytes"
            if not compressed and (size := os.fstat(f.fileno()).st_size) != expected:
                problem = "truncated" if size < expected else "has trailing bytes"
                raise DataError(f"{path}: {problem}: {says}, file has {size}")
            data = _read_body(read, body)
            if len(data) < body:
                raise DataError(f"{path}: truncated: {says}, file has {header + len(data)}")
            if read(1):
                raise DataError(f"{path}: has trailing bytes: {says}, file has more")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read or decompressed ({e})") from None
    try:
        array = np.frombuffer(data, dtype).reshape(dims)  # writable: a bytearray's memory
    except ValueError as e:  # more dimensions than NumPy holds, or a 0-sized shape it cannot index
        raise DataError(f"{path}: header says {shape_text(dims)}, which NumPy cannot hold ({str(e)[:100]})") from None
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


# dataset_dirs' order without --data-dir, in words (the flags' help shows it as their default)
SEARCH_ORDER = ("$LENET_DATA/<dataset>, the cache (~/.cache/lenet-parity/<dataset>, or under $XDG_CACHE_HOME), ./data/<dataset>, "
                "torchvision's ./data/MNIST/raw (FashionMNIST/raw), paddle's ~/.cache/paddle/dataset/<dataset>, /usr/share/datasets/<dataset>")  # fmt: skip


def dataset_dirs(dataset: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for `dataset`, in order.

    An explicit `data_dir` is the only place looked (the data set's own folder, or one
    holding `<dataset>/`). Otherwise (SEARCH_ORDER): `$LENET_DATA/<dataset>/`, the cache,
    `./data/<dataset>/`, torchvision's and paddle's usual folders, then Debian's
    `/usr/share/datasets/<dataset>/` (CIFAR-10: the first three only).
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown data set {dataset!r}; choose from {', '.join(DATASETS)}")
    if data_dir is not None:
        return [Path(data_dir), Path(data_dir) / dataset]
    dirs = []
    if os.environ.get("LENET_DATA"):
        dirs.append(Path(os.environ["LENET_DATA"]) / dataset)
    dirs += [cache_dir(dataset), Path("data") / dataset]
    if dataset == "cifar10":  # torchvision and paddle fetch CIFAR-10's pickled version, which is not read here
        return dirs
    tv_name = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[dataset]
    dirs += [
        Path("data") / tv_name / "raw",  # torchvision.datasets.MNIST(root="data")
        Path.home() / ".cache" / "paddle" / "dataset" / dataset.replace("-", "_"),  # paddle.vision.datasets
        Path("/usr/share/datasets") / dataset,
    ]
    return dirs


def holds(dataset: str, folder: Path, split: str) -> bool:
    """Whether `folder` holds `split` of `dataset`: its IDX files (raw or .gz); for CIFAR-10 its
    .bin files (in the folder or in cifar-10-batches-bin/ inside it) or the archive."""
    if dataset == "cifar10":
        return (folder / CIFAR_ARCHIVE).is_file() or any(all((base / f).is_file() for f in CIFAR_SPLITS[split]) for base in (folder / CIFAR_FOLDER, folder))
    return all(_find_file(folder, stem) for stem in SPLITS[split])


def find_dataset(dataset: str, data_dir: str | os.PathLike | None = None, split: str = "test") -> Path | None:
    """The first folder of `dataset_dirs` that holds `split`."""
    return next((folder for folder in dataset_dirs(dataset, data_dir) if holds(dataset, folder, split)), None)


def _content_md5(path: Path, max_bytes: int = MAX_IDX_BYTES, gunzip: bool = True) -> str:
    """md5 of the file's content (gunzipped when it is gzip, unless `gunzip` is False), read a
    chunk at a time and never more than `max_bytes` of it (a downloaded file is a stranger's
    too); '' beyond that."""
    digest, total = hashlib.md5(), 0
    with open(path, "rb") as f:
        compressed = gunzip and f.read(2) == b"\x1f\x8b"
        f.seek(0)
        read = _Gunzip(f).read if compressed else f.read
        while data := read(_CHUNK):
            total += len(data)
            if total > max_bytes:
                return ""
            digest.update(data)
    return digest.hexdigest()


Downloader = Callable[[str, Path], Path]  # (url, folder) -> path of the downloaded file
MAX_SHOWN_ERROR = 100  # characters of a mirror's error shown in a message


class DownloadFailed(DataError):
    """No mirror gave every file with the right checksum; nothing was written.

    Attributes:
        tried: (mirror or folder, its error, short), in the order tried.
    """

    def __init__(self, tried: list[tuple[str, str]]):
        super().__init__("; ".join(f"{where}: {error}" for where, error in tried))
        self.tried = tried


def _short(error: BaseException, url: str, name: str) -> str:
    """An exception as a mirror's line: its first line, the file's name for its URL, at most MAX_SHOWN_ERROR characters."""
    text = (str(error).splitlines() or [""])[0].replace(url, name).strip() or type(error).__name__
    return text if len(text) <= MAX_SHOWN_ERROR else text[: MAX_SHOWN_ERROR - 3] + "..."


def _nearest_folder(path: Path) -> Path:
    """`path` if it exists, else its nearest ancestor that does ('.' for a relative one)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def download(dataset: str, folder: Path, downloader: Downloader, mirror: str | None = None) -> Path:
    """Fetch the files of `dataset` into `folder` with `downloader`, checking each file's md5
    (MNIST's: of the uncompressed content, so any gzip wrapper will do; CIFAR-10's: of the archive).

    Nothing is written, and `folder` is not created, until every file has come with the right
    checksum: they are fetched into a temporary folder inside `folder`, or beside where it will
    be (its nearest existing ancestor: the same file system, so that moving them in is a
    rename), which is removed whatever happens. A file already in `folder` with the right
    checksum is not fetched again.

    Args:
        mirror: base URL holding `<dataset>/<file>.gz`; default $LENET_DATA_MIRROR, else the
            data set's public mirrors.
    Returns:
        `folder`.
    Raises:
        DownloadFailed: when no mirror gave every file with the right checksum; its `tried`
            holds each mirror's error.
    """
    import shutil
    import tempfile

    mirror = mirror or os.environ.get("LENET_DATA_MIRROR")
    bases = [mirror.rstrip("/") + f"/{dataset}/"] if mirror else list(MIRRORS[dataset])
    archive = dataset == "cifar10"  # one archive, checked by the md5 of the file; MNIST's files by their content's
    md5_of = (lambda p: _content_md5(p, CIFAR_ARCHIVE_MAX, gunzip=False)) if archive else _content_md5
    folder = Path(folder)
    place = _nearest_folder(folder)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".lenet-download-", dir=place))
    except OSError as e:
        raise DownloadFailed([(str(folder), f"nothing can be written in {place} ({e.strerror or type(e).__name__})")]) from None
    found = (lambda where, stem: where / stem if (where / stem).is_file() else None) if archive else _find_file
    tried = []
    try:
        for base in bases:
            url = name = base
            try:
                for stem, md5 in CHECKSUMS[dataset].items():
                    if any(path is not None and md5_of(path) == md5 for path in (found(folder, stem), found(staging, stem))):
                        continue  # in place already, or fetched from a mirror tried before
                    name = stem if archive else stem + ".gz"
                    url = base + name
                    if (staging / name).exists():  # a bad copy from a mirror tried before: a downloader may take it for done
                        (staging / name).unlink()
                    path = Path(downloader(url, staging))
                    if md5_of(path) != md5:
                        path.unlink()
                        raise DataError(f"{name}: checksum mismatch")
            except Exception as e:  # a downloader raises whatever its library raises
                tried.append((base, _short(e, url, name)))
                continue
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for path in staging.iterdir():
                    if path.is_file() and not path.name.startswith("."):  # not a downloader's temporary file
                        os.replace(path, folder / path.name)
            except OSError as e:
                tried.append((str(folder), f"cannot be written ({e.strerror or type(e).__name__})"))
                break
            return folder
        raise DownloadFailed(tried)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def locate(dataset: str, data_dir: str | os.PathLike | None = None, downloader: Downloader | None = None) -> Path:
    """The folder holding both splits of `dataset`, downloading them if need be.

    Downloads go to `data_dir` when given (created once the download has succeeded), else to
    the cache.

    Raises:
        DataError: where the files were looked for and how to provide them: one line when no
            download was tried; when one failed, a line then indented ones: the folders looked
            in, the downloader, each mirror tried with its error, what to do.
    """
    folders = dataset_dirs(dataset, data_dir)
    found = [d for d in folders if holds(dataset, d, "train") and holds(dataset, d, "test")]
    if found:
        return found[0]
    target = Path(data_dir) if data_dir is not None else cache_dir(dataset)
    if dataset == "cifar10":
        names = f"{CIFAR_ARCHIVE} (or its {CIFAR_FOLDER}/ folder)"
    else:
        names = ", ".join(f"{s}.gz" for split in SPLITS.values() for s in split)
    looked = ", ".join(str(d) for d in folders)
    if data_dir is not None and not Path(data_dir).exists():
        looked = f"{data_dir}: no such folder"
    if downloader is None:
        raise DataError(f"{dataset} not found (looked in {looked}) and no download was tried; put {names} in one of those folders or pass --data-dir DIR")
    try:
        return download(dataset, target, downloader)
    except DownloadFailed as e:
        lines = [
            f"{dataset} not found, and its download failed; nothing was written:",
            f"  looked in {looked}",
            f"  downloader: {getattr(downloader, 'label', 'unnamed')}",
        ]
        lines += [f"  {where}: {error}" for where, error in e.tried]  # each mirror tried
        lines.append(f"  put {names} in one of the folders looked in, or pass --data-dir DIR")
        raise DataError("\n".join(lines)) from None


def http_downloader() -> Downloader:
    """(url, folder) -> path with the standard library: for when the framework's downloader cannot
    be imported (torchvision's CUDA build beside a CPU torch). Streams to a temporary file, at most
    CIFAR_ARCHIVE_MAX bytes, then renames it into place."""

    def fetch(url: str, folder: Path) -> Path:
        import tempfile
        import urllib.request

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / url.rsplit("/", 1)[-1]
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                total = 0
                while data := response.read(_CHUNK):
                    total += len(data)
                    if total > CIFAR_ARCHIVE_MAX:
                        raise DataError(f"{url}: more than {CIFAR_ARCHIVE_MAX:,} bytes; not a file of these data sets")
                    out.write(data)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    fetch.label = "urllib (the standard library)"
    return fetch


def load_split(folder: str | os.PathLike, split: str = "test", dataset: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ((N, 28, 28); CIFAR-10 (N, 3, 32, 32)) and labels (N,) int64 of one split held in `folder`."""
    folder = Path(folder)
    if dataset == "cifar10":
        return read_cifar(folder, split)
    paths = [_find_file(folder, stem) or folder / stem for stem in SPLITS[split]]
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{paths[0]}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{paths[1]}: {labels.shape} labels for {len(images)} images")
    if labels.max(initial=0) > 9:
        raise DataError(f"{paths[1]}: label {labels.max()} out of range 0..9")
    return images, labels.astype(np.int64)


def cifar_records(data: bytes, where: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary file's records: images (N, 3, 32, 32) uint8 and labels (N,) int64.

    Raises:
        DataError: not a whole number of records (1 to 10,000), or a label outside 0..9.
    """
    if not data or len(data) % CIFAR_RECORD or len(data) > CIFAR_FILE_RECORDS * CIFAR_RECORD:
        raise DataError(f"{where}: {len(data):,} bytes is not a whole number of {CIFAR_RECORD:,}-byte CIFAR-10 records (1 to {CIFAR_FILE_RECORDS:,})")
    records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{where}: label {labels.max()} out of range 0..9 (is it CIFAR-100's binary version?)")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _cifar_from_archive(archive: Path, names: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """The named .bin members of the archive, read in one streaming pass without extracting
    anything: only regular files of the expected names and sizes, and never more than
    CIFAR_ARCHIVE_MAX bytes of it decompressed."""
    import tarfile

    wanted, found = {f"{CIFAR_FOLDER}/{n}": n for n in names}, {}

    class BoundedTarInfo(tarfile.TarInfo):
        """tarfile reads a GNU long name or link ('L', 'K') and a pax header ('x', 'g', Solaris 'X')
        whole into memory, before the loop below sees the member: their sizes are checked first."""

        def _proc_member(self, tar):
            if (
                self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
                and self.size > CIFAR_TAR_HEADER_MAX
            ):
                raise DataError(
                    f"{archive}: a tar header of type {self.type.decode('latin-1')!r} claims {self.size:,} bytes, more than the "
                    f"{CIFAR_TAR_HEADER_MAX:,} a name or pax header needs; not the CIFAR-10 archive"
                )
            return super()._proc_member(tar)

    try:
        with tarfile.open(archive, "r|gz", tarinfo=BoundedTarInfo) as tar:
            for member in tar:
                if member.offset_data + member.size > CIFAR_ARCHIVE_MAX:
                    raise DataError(
                        f"{archive}: holds more than {CIFAR_ARCHIVE_MAX:,} bytes before {', '.join(sorted(set(wanted) - set(found)))}; not the CIFAR-10 archive"
                    )
                if member.name in wanted and member.isfile():
                    if member.size > CIFAR_FILE_RECORDS * CIFAR_RECORD:
                        raise DataError(f"{archive}: {member.name} is {member.size:,} bytes, more than 10,000 records")
                    found[member.name] = tar.extractfile(member).read()
                    if len(found) == len(wanted):
                        break
    except (tarfile.TarError, OSError, EOFError, zlib.error, RecursionError) as e:  # RecursionError: a chain of long-name headers
        raise DataError(f"{archive}: cannot be read ({type(e).__name__}: {str(e)[:100]})") from None
    missing = [m for m in wanted if m not in found]
    if missing:
        raise DataError(f"{archive}: has no {', '.join(missing)}; is it {CIFAR_ARCHIVE} (the binary version)?")
    return [(f"{archive}:{m}", found[m]) for m in wanted]


def read_cifar(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's `split` from `folder`: its .bin files (in cifar-10-batches-bin/ or the folder
    itself), else the archive.

    Raises:
        DataError: one line naming the file and the problem.
    """
    names = CIFAR_SPLITS[split]
    for base in (folder / CIFAR_FOLDER, folder):
        if all((base / n).is_file() for n in names):
            chunks = []
            for n in names:
                path = base / n
                if path.stat().st_size > CIFAR_FILE_RECORDS * CIFAR_RECORD:
                    raise DataError(f"{path}: {path.stat().st_size:,} bytes, more than 10,000 CIFAR-10 records")
                chunks.append((str(path), path.read_bytes()))
            break
    else:
        if not (folder / CIFAR_ARCHIVE).is_file():
            raise DataError(f"{folder}: no CIFAR-10 {split} files ({', '.join(names)}) in it or in {CIFAR_FOLDER}/, and no {CIFAR_ARCHIVE}")
        chunks = _cifar_from_archive(folder / CIFAR_ARCHIVE, names)
    parts = [cifar_records(data, where) for where, data in chunks]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def to_model_input(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 (N, H, W) or (N, C, H, W) pixels -> the models' input contract: float NCHW in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    return (x.astype(np.float64) / 255.0).astype(dtype)
