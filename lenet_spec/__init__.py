"""lenet_spec: every fact the PyTorch and PaddlePaddle LeNets must agree on, once (NumPy only)."""

from . import layers
from .checkpoint import SPEC_VERSION
from .init import SCHEMES, init_params
from .layers import *  # noqa: F403 (the layer types and their constants: lenet_spec.layers.__all__)
from .variants import C3_TABLE, VARIANTS, get_variant, resolve

__all__ = ["SCHEMES", "SPEC_VERSION", "C3_TABLE", "VARIANTS", "get_variant", "resolve", "init_params", *layers.__all__]
