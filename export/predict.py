"""python -m export.predict model.onnx IMAGE...: classify images with an exported file alone.

Deployment without torch or paddle: this module imports onnxruntime, numpy and Pillow (and
lenet_spec's NumPy IDX reader); tests check that neither framework is imported.

Inputs: PNG/JPEG of any size and colour, .npy arrays (one image (H, W) or a stack (N, H, W)),
IDX files (a stack). For one-channel models, a picture goes through MNIST's own preprocessing
(`mnist_field`): grayscale, ink as high values (a dark-on-light scan is inverted), cropped to the
ink's bounding box, fitted into 20x20 keeping the aspect ratio, and placed in a 28x28 field with
its centre of mass at the centre. Fashion-MNIST models get that data set's: fitted into 28x28,
centred. An array already of the model's size with ink high (an MNIST test image, say) is taken
as it is. Colour models (cifar-net) get the picture resized to their input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from lenet_spec.cli import HelpFormatter

from .metadata import MetadataError, ModelInfo
from .runtime import RuntimeUnavailable, info_of, provider_of, run, session

INK_THRESHOLD = 0.1  # of the ink's range: what counts as ink for the bounding box (scanner noise stays below)
EMPTY = 0.05  # an image whose values span less than this (on [0, 1]) holds nothing to classify


class InputError(ValueError):
    """One input that cannot be classified; the others still are."""


def load(path: Path, colour: bool) -> list[np.ndarray]:
    """The images a file holds, as float arrays in [0, 1]: (H, W) gray, or (H, W, 3) for colour."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError("no such file")
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise InputError(f"not a readable .npy array ({e})") from None
        return _as_images(array, colour)
    if suffix in (".idx", ".ubyte", ".gz") or "-idx" in path.name:
        from lenet_spec.data import DataError, read_idx

        try:
            return _as_images(read_idx(path), colour)
        except DataError as e:
            raise InputError(str(e).removeprefix(f"{path}: ")) from None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)  # transparent = paper
            array = np.asarray(im.convert("RGB" if colour else "L"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise InputError(f"not an image Pillow can read ({type(e).__name__})") from None
    return [array]


def _as_images(array: np.ndarray, colour: bool) -> list[np.ndarray]:
    """A 2-D array is one image, a 3-D one (N, H, W) a stack; uint8 is 0-255, floats 0-1."""
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif np.issubdtype(array.dtype, np.number) and not np.issubdtype(array.dtype, np.complexfloating):
        array = array.astype(np.float32)
        if array.size and (array.min() < 0 or array.max() > 1):
            raise InputError(f"float values must lie in [0, 1], found [{array.min():.3g}, {array.max():.3g}]; save uint8 0-255 or scale them")
    else:
        raise InputError(f"holds {array.dtype} values, not pixels")
    if colour:
        if array.ndim == 3 and array.shape[-1] == 3:
            return [array]
        if array.ndim == 4 and array.shape[-1] == 3:
            return list(array)
        raise InputError(f"shape {array.shape}: a colour model takes (H, W, 3) or (N, H, W, 3)")
    if array.ndim == 2:
        return [array]
    if array.ndim == 3:
        return list(array)
    if array.ndim == 4 and array.shape[1] == 1:
        return list(array[:, 0])
    raise InputError(f"shape {array.shape}: expected (H, W), (N, H, W) or (N, 1, H, W)")


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[-1])]
    out = [np.asarray(Image.fromarray(np.ascontiguousarray(c, dtype=np.float32), mode="F").resize((width, height), Image.Resampling.LANCZOS)) for c in channels]
    return np.clip(out[0] if image.ndim == 2 else np.stack(out, -1), 0.0, 1.0)


def ink_high(image: np.ndarray) -> np.ndarray:
    """Gray [0, 1] with ink as high values over a zero background: a light border means a
    dark-on-light picture, which is inverted; the background level is then subtracted."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    if np.median(border) > 0.5:
        image = 1.0 - image
        border = 1.0 - border
    image = np.clip(image - np.median(border), 0.0, None)
    if image.max() - image.min() < EMPTY:
        raise InputError("the image is empty (no ink to classify)")
    return image / image.max()


def mnist_field(image: np.ndarray, box: int = 20, field: int = 28, centre_of_mass: bool = True) -> np.ndarray:
    """MNIST's normalisation of one gray image: the ink's bounding box fitted into box x box
    keeping the aspect ratio, placed in a field x field image centred by centre of mass (or by
    the box, for Fashion-MNIST). Applied to an MNIST test image it gives that image back within
    1/255 (measured on 2,000: the bounding box and the centre of mass at pixel (14, 14) match)."""
    image = ink_high(image)
    rows, cols = np.nonzero(image > INK_THRESHOLD)
    scale = box / max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    margin = int(np.ceil(2 / min(scale, 1.0)))  # about two output pixels of rim
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + 1 + margin, image.shape[0])
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + 1 + margin, image.shape[1])
    crop = image[r0:r1, c0:c1]
    h, w = crop.shape
    fitted = _resize(crop, min(field, max(1, round(w * scale))), min(field, max(1, round(h * scale))))
    h, w = fitted.shape
    if centre_of_mass:
        total = fitted.sum()
        cy = (fitted.sum(1) * np.arange(h)).sum() / total
        cx = (fitted.sum(0) * np.arange(w)).sum() / total
        top, left = int(round(field / 2 - cy)), int(round(field / 2 - cx))  # MNIST: centre of mass at pixel (14, 14)
    else:
        top, left = (field - h) // 2, (field - w) // 2
    top, left = min(max(top, 0), field - h), min(max(left, 0), field - w)
    out = np.zeros((field, field), dtype=np.float32)
    out[top : top + h, left : left + w] = fitted
    return out


def prepare(image: np.ndarray, info: ModelInfo, from_picture: bool) -> np.ndarray:
    """One image -> the model's input (C, H, W) float32 in [0, 1]."""
    size = (info.height, info.width)
    if info.channels == 3:
        return _resize(image, info.width, info.height).transpose(2, 0, 1).astype(np.float32)
    if not from_picture and image.shape == size and np.median(np.concatenate([image[0], image[-1]])) < 0.5:
        if image.max() - image.min() < EMPTY:
            raise InputError("the image is empty (no ink to classify)")
        return image[None].astype(np.float32)  # already in the data set's format
    if info.dataset == "fashion-mnist":
        field = mnist_field(image, box=min(size), field=min(size), centre_of_mass=False)
    else:
        field = mnist_field(image, box=round(min(size) * 20 / 28), field=min(size))
    return field[None]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def predict_file(sess, info: ModelInfo, path: Path, top: int) -> list[dict]:
    """One record per image in the file: its top classes and probabilities."""
    picture = path.suffix.lower() not in (".npy", ".idx", ".ubyte", ".gz") and "-idx" not in path.name
    images = load(path, info.channels == 3)
    if not images:
        raise InputError("holds no images")
    batch = np.stack([prepare(im, info, picture) for im in images])
    probs = softmax(run(sess, batch).astype(np.float64))
    records = []
    for i, p in enumerate(probs):
        order = np.argsort(-p)[:top]
        record = {"file": str(path), "top": [{"class": int(k), "label": info.classes[k], "probability": float(p[k])} for k in order]}
        if len(images) > 1:
            record["index"] = i
        records.append(record)
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.predict", description="Classify images with an exported ONNX file (onnxruntime only).", formatter_class=HelpFormatter)
    p.add_argument("model", help="an ONNX file written by `python -m export`")
    p.add_argument("images", nargs="+", help="PNG/JPEG files, .npy arrays, IDX files")
    p.add_argument("--top", type=int, default=3, help="how many classes to show per image")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"], help="onnxruntime provider")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout instead of a report")
    args = p.parse_args(argv)
    try:
        sess = session(args.model, args.device)
        info = info_of(sess, args.model)
    except (MetadataError, RuntimeUnavailable, ValueError) as e:
        print(f"export.predict: error: {e}", file=sys.stderr)
        return 2
    top = max(1, min(args.top, len(info.classes)))
    results, failures = [], []
    for name in args.images:
        try:
            records = predict_file(sess, info, Path(name), top)
        except InputError as e:
            failures.append({"file": name, "error": str(e)})
            print(f"export.predict: {name}: {e}", file=sys.stderr)
            continue
        results += records
        if not args.json:
            for r in records:
                where = f"{name}[{r['index']}]" if "index" in r else name
                print(f"{where}: " + ", ".join(f"{t['label']} {100 * t['probability']:.1f}%" for t in r["top"]))
    if args.json:
        print(json.dumps({"model": args.model, "variant": info.variant, "provider": provider_of(sess), "predictions": results, "errors": failures}))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
