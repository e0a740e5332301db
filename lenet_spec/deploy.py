"""The inference form of a variant: what an exported model computes, in plain layers.

A connection table (LeNet-5's C3) is a training-time structure: its parameters hold only the
table's connections. For inference the same function is a dense convolution whose kernel is
zero off the table. Exporters build this form so that every ONNX graph holds one Conv per
convolution and no scatter arithmetic (paddle2onnx cannot convert the scatter at all).

Likewise for the stateful layers: in evaluation Dropout passes its input through and is left
out, and a BatchNorm after a convolution or dense layer is an affine map per channel on its
running statistics, folded into that layer's weights and bias (w * s, (b - mean) * s + shift,
s = scale / sqrt(var + eps)): the graph holds one Conv or Gemm where training had two layers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .layers import BatchNorm, Conv, Dense, Dropout, Variant


def dense_kernel(layer: Conv, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A tabled conv's parameters as a dense (out, in, kh, kw) kernel and (out,) bias."""
    k = layer.kernel
    first = params[f"{layer.name}.weight_{layer.groups()[0].fan}"]
    weight = np.zeros((layer.out_channels, layer.in_channels, k, k), dtype=first.dtype)
    bias = np.zeros(layer.out_channels, dtype=first.dtype)
    for g in layer.groups():
        w, b = params[f"{layer.name}.weight_{g.fan}"], params[f"{layer.name}.bias_{g.fan}"]  # (maps, fan, k, k), (maps,)
        for m, j in enumerate(g.maps):
            weight[j, list(layer.table[j])] = w[m]
            bias[j] = b[m]
    return weight, bias


def inference_form(variant: Variant, params: dict[str, np.ndarray]) -> tuple[Variant, dict[str, np.ndarray]]:
    """The same function with every connection table made a dense kernel.

    Args:
        variant: any variant.
        params: its parameters in the spec's layout (lenet_spec.init_params, lenet_spec.mapping).
    Returns:
        (variant without tables, its parameters); the variant keeps its name. The added kernel
        entries are exact zeros, so outputs differ from the original's only by the order in which
        a map's terms are summed (float64 reference: 1.2e-15 relative, measured).
    """
    layers, out = [], dict(params)
    for layer in variant.layers:
        if isinstance(layer, Conv) and layer.table is not None:
            weight, bias = dense_kernel(layer, params)
            for g in layer.groups():
                del out[f"{layer.name}.weight_{g.fan}"], out[f"{layer.name}.bias_{g.fan}"]
            out[f"{layer.name}.weight"], out[f"{layer.name}.bias"] = weight, bias
            layer = replace(layer, table=None)
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, BatchNorm) and layers and isinstance(layers[-1], (Conv, Dense)) and layers[-1].activation == "identity":
            layers[-1] = fold_batchnorm(layers[-1], layer, out)
            continue
        layers.append(layer)
    return replace(variant, layers=tuple(layers)), out


def fold_batchnorm(before: Conv | Dense, bn: BatchNorm, params: dict[str, np.ndarray]) -> Conv | Dense:
    """`before` followed by `bn` (evaluation mode) as one layer: its weight and bias replaced in
    `params` (computed in float64, stored in the weight's dtype), `bn`'s entries removed."""
    name = bn.name
    dtype = params[f"{before.name}.weight"].dtype
    var = params.pop(f"{name}.running_var").astype(np.float64)
    mean = params.pop(f"{name}.running_mean").astype(np.float64)
    del params[f"{name}.num_batches_tracked"]
    s = params.pop(f"{name}.weight").astype(np.float64) / np.sqrt(var + bn.eps)  # (C,)
    shift = params.pop(f"{name}.bias").astype(np.float64)
    weight = params[f"{before.name}.weight"].astype(np.float64)
    params[f"{before.name}.weight"] = (weight * s.reshape(-1, *[1] * (weight.ndim - 1))).astype(dtype)
    params[f"{before.name}.bias"] = ((params[f"{before.name}.bias"].astype(np.float64) - mean) * s + shift).astype(dtype)
    return replace(before, activation=bn.activation)
