"""A NumPy forward pass of any variant: the neutral third opinion in parity checks.

Each layer's arithmetic is its spec class's `reference` (lenet_spec.layers), written straight
from the layer definitions (windows, sums, matrix products) and sharing no code with either
framework. It computes in the dtype of its input (float64 for the checks).
"""

from __future__ import annotations

import numpy as np

from .layers import Layer, Variant, activate

__all__ = ["activate", "forward", "layer_forward"]


def layer_forward(layer: Layer, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One layer of the spec applied to a batch; in training mode BatchNorm uses the batch's
    statistics (and updates `params`' running ones in place) and Dropout applies `masks`."""
    return layer.reference(x, params, train, masks)


def forward(
    variant: Variant,
    params: dict[str, np.ndarray],
    images: np.ndarray,
    dtype=np.float64,
    train: bool = False,
    masks: dict[str, np.ndarray] | None = None,
    updated: dict | None = None,
) -> dict[str, np.ndarray]:
    """Every layer's output for `images` (N, C, H, W) in [0, 1].

    Args:
        variant: the network.
        params: spec-layout parameters and buffers (as from `init_params`); cast to `dtype`
            (a copy: `params` is not changed).
        images: the model's input contract.
        dtype: the dtype to compute in.
        train: training mode (BatchNorm on batch statistics, Dropout with `masks`).
        masks: Dropout's kept units (`lenet_spec.schedule.dropout_masks`), for training mode.
        updated: a dict to receive the state after the pass (training mode moves the running
            statistics).
    Returns:
        Layer name -> output, in order; the last entry is the logits.
    """
    counters = {b.name for b in variant.buffers() if b.dtype == "int64"}
    params = {k: np.asarray(v, dtype=np.int64 if k in counters else dtype) for k, v in params.items()}
    x = np.asarray(images, dtype=dtype)
    out = {}
    for layer in (variant.input, *variant.layers):
        x = layer_forward(layer, x, params, train, masks)
        out[layer.name] = x
    if updated is not None:
        updated.update(params)
    return out
