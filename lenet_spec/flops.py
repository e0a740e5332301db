"""Arithmetic per image, from the spec: what the FLOP bound of issue 5's benchmarks divides by.

Counted: the multiply-adds of convolutions and dense layers (2 FLOPs each), the convention
of the field; pooling, activations, normalisation and the loss are a few percent and left out.
A tabled convolution counts its real connections (C3: 60 of 96 kernels). Training counts 3x
the forward pass: the forward, the gradient of the inputs and that of the weights.
"""

from __future__ import annotations

from .layers import Conv, Dense, RBF, Variant


def forward_flops(variant: Variant) -> int:
    """FLOPs of one image's forward pass."""
    total = 0
    for (name, shape), layer in zip(variant.shapes()[1:], variant.layers):
        if isinstance(layer, Conv):
            kernels = sum(len(row) for row in layer.table) if layer.table is not None else layer.in_channels * layer.out_channels
            total += 2 * kernels * layer.kernel * layer.kernel * shape[1] * shape[2]
        elif isinstance(layer, Dense):
            total += 2 * layer.in_features * layer.out_features
        elif isinstance(layer, RBF):
            total += 3 * layer.in_features * layer.out_features  # subtract, square, add
    return total


def training_flops(variant: Variant) -> int:
    """FLOPs of one image's training step (forward + backward), 3x the forward pass."""
    return 3 * forward_flops(variant)
