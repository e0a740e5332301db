"""Arithmetic per image, from the spec: what the FLOP bound of issue 5's benchmarks divides by.

Counted: the multiply-adds of convolutions and dense layers (2 FLOPs each), the convention
of the field; pooling, activations, normalisation and the loss are a few percent and left out.
A tabled convolution counts its real connections (C3: 60 of 96 kernels). Training counts 3x
the forward pass: the forward, the gradient of the inputs and that of the weights.
"""

from __future__ import annotations

from .layers import Variant


def forward_flops(variant: Variant) -> int:
    """FLOPs of one image's forward pass: each layer's `flops` (lenet_spec.layers), given its output shape."""
    return sum(layer.flops(shape) for (name, shape), layer in zip(variant.shapes()[1:], variant.layers))


def training_flops(variant: Variant) -> int:
    """FLOPs of one image's training step (forward + backward), 3x the forward pass."""
    return 3 * forward_flops(variant)
