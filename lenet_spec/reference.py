"""A NumPy forward pass of any variant: the neutral third opinion in parity checks.

Written straight from the layer definitions (windows, sums, matrix products), sharing no
code with either framework. It computes in the dtype of its input (float64 for the checks).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .layers import SCALED_TANH_A, SCALED_TANH_S, AdaptivePool, BatchNorm, Conv, Dense, Dropout, Flatten, Input, Pool, RBF, Subsample, Variant
from .variants import rbf_bitmaps


def activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "identity":
        return x
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "scaled_tanh":
        return SCALED_TANH_A * np.tanh(SCALED_TANH_S * x)
    raise ValueError(f"unknown activation {name!r}")


def _windows(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, Ho, Wo, k, k) views of every k x k window at stride s."""
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]


def _conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    k = weight.shape[-1]
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = _windows(x, k, stride)  # (N, C, Ho, Wo, k, k)
    n, c, ho, wo = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * k * k)
    out = cols @ weight.reshape(weight.shape[0], -1).T + bias  # (N*Ho*Wo, O)
    return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)


def layer_forward(layer, x: np.ndarray, params: dict[str, np.ndarray], train: bool = False, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """One layer of the spec applied to a batch; in training mode BatchNorm uses the batch's
    statistics (and updates `params`' running ones in place) and Dropout applies `masks`."""
    if isinstance(layer, BatchNorm):
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        mean_key, var_key, count_key = (f"{layer.name}.{k}" for k in ("running_mean", "running_var", "num_batches_tracked"))
        if train:
            # each channel's values copied into one contiguous row, which NumPy sums pairwise; a
            # conv's output here is laid out channel-fastest, and summed as it lies the variance
            # is 1.2e-12 off (lenet5-bn's c1 on 256 MNIST images; math.fsum as the exact sum)
            rows = np.ascontiguousarray(np.moveaxis(x, 1, 0).reshape(x.shape[1], -1))
            mean, var = rows.mean(axis=1), rows.var(axis=1)
            n = x.size // x.shape[1]
            params[mean_key] = (1 - layer.momentum) * params[mean_key] + layer.momentum * mean
            params[var_key] = (1 - layer.momentum) * params[var_key] + layer.momentum * var * n / (n - 1)
            params[count_key] = params[count_key] + 1
        else:
            mean, var = params[mean_key], params[var_key]
        y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + layer.eps)
        return activate(y * params[f"{layer.name}.weight"].reshape(shape) + params[f"{layer.name}.bias"].reshape(shape), layer.activation)
    if isinstance(layer, Dropout):
        if not train:
            return x
        return x * masks[layer.name] / (1 - layer.p)
    if isinstance(layer, Input):
        p = layer.pad
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        return x * layer.scale + layer.offset
    if isinstance(layer, Conv):
        if layer.table is None:
            y = _conv(x, params[f"{layer.name}.weight"], params[f"{layer.name}.bias"], layer.stride, layer.padding)
        else:  # map by map, straight from the table
            shape = layer.out_shape(x.shape[1:])
            y = np.empty((x.shape[0], *shape), dtype=x.dtype)
            for g in layer.groups():
                w, b = params[f"{layer.name}.weight_{g.fan}"], params[f"{layer.name}.bias_{g.fan}"]
                for m, j in enumerate(g.maps):
                    y[:, j : j + 1] = _conv(x[:, list(layer.table[j])], w[m : m + 1], b[m : m + 1], layer.stride, layer.padding)
        return activate(y, layer.activation)
    if isinstance(layer, Pool):
        win = _windows(x, layer.kernel, layer.stride)
        y = win.max(axis=(4, 5)) if layer.mode == "max" else win.mean(axis=(4, 5))
        return activate(y, layer.activation)
    if isinstance(layer, AdaptivePool):
        h, w = x.shape[2:]
        oh, ow = layer.output_size
        y = np.empty((*x.shape[:2], oh, ow), dtype=x.dtype)
        for i, (h0, h1) in enumerate(layer.windows(h, oh)):
            for j, (w0, w1) in enumerate(layer.windows(w, ow)):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].max(axis=(2, 3))
        return y
    if isinstance(layer, Subsample):
        total = _windows(x, layer.kernel, layer.kernel).sum(axis=(4, 5))
        coef = params[f"{layer.name}.coefficient"][None, :, None, None]
        bias = params[f"{layer.name}.bias"][None, :, None, None]
        return activate(total * coef + bias, layer.activation)
    if isinstance(layer, Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, Dense):
        y = x @ params[f"{layer.name}.weight"].T + params[f"{layer.name}.bias"]
        return activate(y, layer.activation)
    if isinstance(layer, RBF):
        centres = rbf_bitmaps().astype(x.dtype)
        return -((x[:, None, :] - centres[None]) ** 2).sum(axis=-1)
    raise TypeError(f"no reference for layer {layer!r}")


def forward(variant: Variant, params: dict[str, np.ndarray], images: np.ndarray, dtype=np.float64, train: bool = False, masks: dict[str, np.ndarray] | None = None, updated: dict | None = None) -> dict[str, np.ndarray]:
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
    params = {k: np.asarray(v, dtype=np.int64 if k.endswith("num_batches_tracked") else dtype) for k, v in params.items()}
    x = np.asarray(images, dtype=dtype)
    out = {}
    for layer in (variant.input, *variant.layers):
        x = layer_forward(layer, x, params, train, masks)
        out[layer.name] = x
    if updated is not None:
        updated.update(params)
    return out
