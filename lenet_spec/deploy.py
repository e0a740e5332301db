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

from .layers import BatchNorm, Conv, Dense, Layer, Variant


def dense_kernel(layer: Conv, params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A tabled conv's parameters as a dense (out, in, kh, kw) kernel and (out,) bias (Conv.dense_kernel)."""
    return layer.dense_kernel(params)


def inference_form(variant: Variant, params: dict[str, np.ndarray]) -> tuple[Variant, dict[str, np.ndarray]]:
    """The same function with every connection table made a dense kernel, Dropout left out and
    each BatchNorm folded into the layer before it where it can be: each layer's `inference`
    (lenet_spec.layers).

    Args:
        variant: any variant.
        params: its parameters in the spec's layout (lenet_spec.init_params, lenet_spec.mapping).
    Returns:
        (variant without tables, its parameters); the variant keeps its name. The added kernel
        entries are exact zeros, so outputs differ from the original's only by the order in which
        a map's terms are summed (float64 reference: 1.2e-15 relative, measured).
    """
    layers: list[Layer] = []
    out = dict(params)
    for layer in variant.layers:
        layer.inference(layers, out)
    return replace(variant, layers=tuple(layers)), out


def fold_batchnorm(before: Conv | Dense, bn: BatchNorm, params: dict[str, np.ndarray]) -> Conv | Dense:
    """`before` followed by `bn` (evaluation mode) as one layer: its weight and bias replaced in
    `params` (computed in float64, stored in the weight's dtype), `bn`'s entries removed (BatchNorm.fold_into)."""
    return bn.fold_into(before, params)
