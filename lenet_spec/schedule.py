"""The schedule every framework trains on: the batch order, the batches, each step's learning
rate, distortions and Dropout masks, all functions of (seed, epoch) alone (NumPy only), so a
resumed run, a distributed job and the other framework draw the same steps."""

from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from .augment import affine_thetas
from .layers import Dropout, Variant
from .recipe import Recipe, lr_at


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the `n` training images in `epoch`: a function of (seed, epoch) alone,
    so a resumed run draws the same batches as an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Consecutive batches over n items; the last one may be smaller."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def dropout_masks(variant, seed: int, epoch: int, step: int, batch: int) -> dict[str, np.ndarray] | None:
    """The units each Dropout layer of `variant` keeps at training step `step` of `epoch`: bool
    (batch, *the layer's input shape) per layer name, kept with probability 1 - p, drawn from
    (seed, epoch, step) alone, as the batch order is; None for a variant without dropout."""
    shapes = dict(variant.shapes())
    names = [name for name, _ in variant.shapes()]
    layers = [layer for layer in variant.layers if isinstance(layer, Dropout)]
    if not layers:
        return None
    rng = np.random.default_rng([seed, epoch, step, 2])
    return {layer.name: rng.random((batch, *shapes[names[names.index(layer.name) - 1]])) >= layer.p for layer in layers}


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


class Step(NamedTuple):
    """One optimizer step as the spec decides it, the same for every framework."""

    index: np.ndarray  # the training images of the batch
    lr: float
    theta: np.ndarray | None  # (batch, 2, 3) distortions, with --augment
    masks: dict[str, np.ndarray] | None  # the units each Dropout layer keeps


def epoch_steps(n: int, recipe: Recipe, seed: int, epoch: int, augment: bool, size: int, variant: Variant | None = None) -> Iterator[Step]:
    """Every step of `epoch`, in order: the schedule every framework trains on, a function of
    (seed, epoch) alone; with `variant`, its Dropout layers' masks too."""
    order = epoch_order(n, seed, epoch)
    thetas = affine_thetas(n, seed, epoch, size=size) if augment else None
    slices = batch_slices(n, recipe.batch_size)
    for i, sl in enumerate(slices):
        index = order[sl]
        masks = dropout_masks(variant, seed, epoch, i, len(index)) if variant is not None else None
        yield Step(index, lr_at(recipe, epoch * len(slices) + i, len(slices)), None if thetas is None else thetas[index], masks)
