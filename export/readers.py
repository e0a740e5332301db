"""The files export.predict and export.serve classify, read with every size bounded before it is read.

Inputs: PNG/JPEG/BMP/GIF/TIFF/WebP/PPM pictures in any colour, .npy arrays (one image (H, W) or a
stack (N, H, W)), IDX files (a stack). Every file is bounded before it is read: MAX_FILE_BYTES on
disk, MAX_PIXELS per image (a picture's header is checked before it is decoded), read_idx's
MAX_IDX_BYTES for IDX, MAX_IMAGES per file (from an IDX or .npy header); only regular files are
read. A file that cannot be read gets one line (InputError). Imports numpy, Pillow (for pictures)
and lenet_spec's NumPy IDX reader only.
"""

from __future__ import annotations

import math
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

MAX_FILE_BYTES = 256 * 2**20  # any input file, checked before it is read: a .npy stack of 340,000 MNIST images fits
MAX_PIXELS = 4096 * 4096  # one image's width x height, checked before a picture is decoded: a 12 MP phone photo (4032x3024) fits
MAX_DECODED_SIDE = 1024  # a larger picture is reduced (box filter) to at most this side as it is read: the model sees 28 pixels
# images in one input file, checked from an IDX or .npy header: MNIST's training set (60,000) fits;
# --max-images takes more (a 128 MiB IDX holds 171,000 MNIST-sized images)
MAX_IMAGES = 100_000
PICTURE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")  # what people give; not EPS (Ghostscript) or the rarer plugins
NPY_HEADER_MAX = 10_000  # bytes of a .npy header: NumPy's own limit for reading one safely


class InputError(ValueError):
    """One input that cannot be classified; the others still are."""


class Unreadable(InputError):
    """Bytes that are not a picture or array at all (the service answers 400; other InputErrors 422)."""


def first_line(e: BaseException) -> str:
    """An exception's first non-empty line, at most 200 characters (the name when it has no text)."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)[:200]


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return "npy"
    if suffix in (".idx", ".ubyte", ".gz") or "-idx" in path.name:
        return "idx"
    return "picture"


def _too_many(count: int, max_images: int) -> InputError:
    return InputError(f"holds {count:,} images, more than the {max_images:,} taken from one file; split it, or pass --max-images {count}")


def _not_a_file(mode: int) -> str | None:
    """What a path that is not a regular file is, for its one line; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder, not a file: give the files in it (FOLDER/*.png)"
    kind = (
        "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a pipe"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    return f"is {kind}, not a file: give a picture, .npy or IDX file"


def load(path: Path, colour: bool, max_images: int = MAX_IMAGES) -> np.ndarray:
    """The images a file holds, as a stack in the file's own values: uint8 0-255 or numbers in [0, 1].

    Returns:
        (N, H, W) gray, or (N, H, W, 3) for colour; `pixels` makes floats of a slice of it.
    Raises:
        InputError: one line saying why the file cannot be classified: a missing path, one
            that is not a regular file, too many bytes, or more than `max_images` images.
    """
    try:
        status = path.stat()
    except FileNotFoundError:
        raise InputError("no such file") from None
    except OSError as e:
        raise InputError(f"cannot be read ({e.strerror or type(e).__name__})") from None
    if problem := _not_a_file(status.st_mode):
        raise InputError(problem)
    if status.st_size > MAX_FILE_BYTES:
        raise InputError(f"{status.st_size:,} bytes, more than the {MAX_FILE_BYTES:,} this reader accepts")
    kind = file_kind(path)
    if kind == "picture":
        return read_picture(path, colour)[None]
    if kind == "npy":
        images = as_images(_read_npy(path, max_images), colour)
    else:
        from lenet_spec.data import DataError, TooManyItems, read_idx

        try:
            images = as_images(read_idx(path, max_items=max_images), colour)
        except TooManyItems as e:
            raise _too_many(e.count, max_images) from None
        except DataError as e:
            raise InputError(str(e).removeprefix(f"{path}: ")) from None
    if len(images) > max_images:  # a stack whose count no header gave
        raise _too_many(len(images), max_images)
    return images


def _check_pixels(height: int, width: int) -> None:
    if height * width > MAX_PIXELS:
        raise InputError(f"{width}x{height} pixels, more than the {MAX_PIXELS:,} this reader accepts")


def read_picture(source: Path | BinaryIO, colour: bool) -> np.ndarray:
    """A picture (a file, or bytes in a file object) as uint8 (H, W) or (H, W, 3), its size
    checked before it is decoded: a small PNG that claims 50,000 x 50,000 pixels is refused
    from its header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # a damaged file's warnings would add lines to its one-line error
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=PICTURE_FORMATS) as im:  # reads the header only
                _check_pixels(im.height, im.width)
                factor = math.ceil(max(im.size) / MAX_DECODED_SIDE)
                if factor > 1 and im.format == "JPEG":
                    im.draft(None, (im.width // factor, im.height // factor))  # decoded at 1/2, 1/4 or 1/8 scale: a fraction of the work
                im.load()
                transparent = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
                im = im.convert("RGBA" if transparent else "RGB" if colour else "L")
                if (factor := math.ceil(max(im.size) / MAX_DECODED_SIDE)) > 1:
                    im = im.reduce(factor)  # box filter: detail this fine is far below the model's input, and would cost time and memory
                if transparent:
                    background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                    im = Image.alpha_composite(background, im).convert("RGB" if colour else "L")  # transparent = paper
                return np.asarray(im)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"too large to decode ({e})") from None
    except UnidentifiedImageError:
        raise Unreadable(f"not an image Pillow can read (UnidentifiedImageError; formats read: {', '.join(PICTURE_FORMATS)})") from None
    except Exception as e:  # a damaged file makes Pillow's plugins raise OSError, SyntaxError, ValueError, struct.error, ...
        raise Unreadable(f"not an image Pillow can read ({type(e).__name__})") from None


def _read_npy(path: Path, max_images: int = MAX_IMAGES) -> np.ndarray:
    """A .npy array read with numpy.lib.format: no pickles, no .npz, sizes and a stack's image
    count (N of (N, H, W) or (N, C, H, W)) checked before reading."""
    from numpy.lib import format as npy

    from lenet_spec.data import count_text, shape_text

    with open(path, "rb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy warns of Python 2 headers, ast of odd escapes: the file's one line says enough
        try:
            version = npy.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise InputError(f"a .npy file of format version {version[0]}.{version[1]}; this reader takes 1.0 and 2.0")
            field = f.read(2 if version == (1, 0) else 4)  # the header's length, checked before NumPy reads that many bytes
            if (length := int.from_bytes(field, "little")) > NPY_HEADER_MAX:
                raise InputError(f"a .npy header of {length:,} bytes, more than the {NPY_HEADER_MAX:,} NumPy reads safely")
            f.seek(-len(field), os.SEEK_CUR)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, fortran, dtype = read_header(f, max_header_size=NPY_HEADER_MAX)
        except InputError:
            raise
        except Exception as e:  # ValueError for a bad magic, header or dtype; the header is parsed with ast.literal_eval
            raise Unreadable(f"not a readable .npy array ({first_line(e)})") from None
        if dtype.kind not in "uif":  # bool, complex, object, structured, strings, dates: refused before any byte is read
            raise InputError(f"holds {dtype} values, not pixels")
        if any(d < 0 for d in shape):
            raise InputError(f"not a readable .npy array (shape {shape_text(shape)})")
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        left = os.fstat(f.fileno()).st_size - f.tell()
        if nbytes > MAX_FILE_BYTES:
            raise InputError(f"header says {shape_text(shape)} {dtype} -> {count_text(nbytes)} bytes, more than the {MAX_FILE_BYTES:,} this reader accepts")
        if (len(shape) == 4 or len(shape) == 3 and shape[-1] != 3) and shape[0] > max_images:  # a stack; (H, W, 3) is one colour picture
            raise _too_many(shape[0], max_images)
        if nbytes != left:
            problem = "truncated" if left < nbytes else "has trailing bytes"
            raise InputError(f"{problem}: header says {shape_text(shape)} {dtype} -> {nbytes} bytes of data, file has {left}")
        data = np.empty(nbytes, np.uint8)
        if f.readinto(memoryview(data)) != nbytes:
            raise InputError("truncated while reading")
    try:
        array = data.view(dtype)
        return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    except ValueError as e:  # more dimensions than NumPy holds
        raise InputError(f"not a readable .npy array (shape {shape_text(shape)}: {first_line(e)})") from None


def as_images(array: np.ndarray, colour: bool) -> np.ndarray:
    """A 2-D array is one image, a 3-D one (N, H, W) a stack; uint8 is 0-255, other numbers 0-1.
    Checks the values without copying them.

    Raises:
        InputError: one line, for values that are not pixels, or a shape that is not images.
    """
    if np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating):
        if array.dtype != np.uint8 and array.size:
            lo, hi = array.min(), array.max()
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise InputError("holds NaN or infinite values")
            with np.errstate(over="ignore"):  # huge values become inf: still out of range
                lo, hi = np.float32(lo), np.float32(hi)
            if lo < 0 or hi > 1:
                raise InputError(f"values must lie in [0, 1], found [{lo:.3g}, {hi:.3g}]; scale them (uint8 arrays are read as 0-255)")
    else:
        raise InputError(f"holds {array.dtype} values, not pixels")
    if colour:
        if array.ndim == 3 and array.shape[-1] == 3:
            array = array[None]
        elif not (array.ndim == 4 and array.shape[-1] == 3):
            raise InputError(f"shape {array.shape}: a colour model takes (H, W, 3) or (N, H, W, 3)")
    elif array.ndim == 2:
        array = array[None]
    elif array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim != 3:
        raise InputError(f"shape {array.shape}: expected (H, W), (N, H, W) or (N, 1, H, W)")
    height, width = array.shape[1:3]
    if height == 0 or width == 0:
        raise InputError(f"shape {array.shape}: images of no pixels")
    _check_pixels(height, width)
    return array
