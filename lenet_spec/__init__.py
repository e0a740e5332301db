"""lenet_spec: every fact the PyTorch and PaddlePaddle LeNets must agree on, once (NumPy only)."""

from .checkpoint import SPEC_VERSION
from .init import SCHEMES, init_params
from .layers import (
    ACTIVATIONS,
    SCALED_TANH_A,
    SCALED_TANH_S,
    AdaptivePool,
    BatchNorm,
    BufferSpec,
    ConnectionGroup,
    Conv,
    Dense,
    Dropout,
    Flatten,
    Input,
    ParamSpec,
    Pool,
    RBF,
    Subsample,
    Variant,
)
from .variants import C3_TABLE, VARIANTS, get_variant, rbf_bitmaps

__all__ = [
    "ACTIVATIONS", "SCALED_TANH_A", "SCALED_TANH_S", "SCHEMES", "SPEC_VERSION", "C3_TABLE", "VARIANTS",
    "AdaptivePool", "BatchNorm", "BufferSpec", "ConnectionGroup", "Conv", "Dense", "Dropout", "Flatten", "Input", "ParamSpec", "Pool", "RBF",
    "Subsample", "Variant", "get_variant", "init_params", "rbf_bitmaps",
]  # fmt: skip
