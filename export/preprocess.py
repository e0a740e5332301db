"""Images as the model's input: MNIST's own preprocessing for pictures, arrays of the model's size as they are.

For one-channel models, a picture goes through MNIST's own preprocessing (`mnist_field`):
grayscale, ink as high values (a dark-on-light scan is inverted), cropped to the ink's bounding
box, fitted into 20x20 keeping the aspect ratio, and placed in a 28x28 field with its centre of
mass at the centre. Fashion-MNIST models get that data set's: fitted into 28x28,
centred. An array already of the model's size with ink high (an MNIST test image, say) is taken
as it is. Colour models (cifar-net) get the picture resized to their input.
"""

from __future__ import annotations

import numpy as np

from .metadata import ModelInfo
from .readers import InputError

INK_THRESHOLD = 0.1  # of the ink's range: what counts as ink for the bounding box (scanner noise stays below)
EMPTY = 0.05  # an image whose values span less than this (on [0, 1]) holds nothing to classify


def pixels(images: np.ndarray) -> np.ndarray:
    """A slice of `load`'s stack as float32 in [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


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


def model_inputs(images: np.ndarray, info: ModelInfo, from_picture: bool) -> np.ndarray:
    """A slice of `load`'s stack -> the model's input batch (N, C, H, W) float32 in [0, 1].
    export.serve prepares its requests with this function too."""
    return np.stack([prepare(im, info, from_picture) for im in pixels(images)])
