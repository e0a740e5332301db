"""The inference form of a variant: what an exported model computes, in plain layers.

A connection table (LeNet-5's C3) is a training-time structure: its parameters hold only the
table's connections. For inference the same function is a dense convolution whose kernel is
zero off the table. Exporters build this form so that every ONNX graph holds one Conv per
convolution and no scatter arithmetic (paddle2onnx cannot convert the scatter at all).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .layers import Conv, Variant


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
        params: its parameters in the spec's layout (lenet_spec.init_params, parity.mapping).
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
        layers.append(layer)
    return replace(variant, layers=tuple(layers)), out
