"""Initial weights, drawn with NumPy so that every framework starts from the same numbers.

Each parameter is drawn in `Variant.params()` order from one `numpy.random.default_rng(seed)`,
in float64, then rounded to float32, the dtype models are built in, unless its ParamSpec gives a
constant `initial` (then it draws nothing); `ParamSpec.weight` says which bound of the scheme
applies. A framework's own initialiser is never used.
"""

from __future__ import annotations

import math

import numpy as np

from .layers import ParamSpec, Variant

SCHEMES = {
    # 1998 paper: every trainable parameter uniform in +-2.4 / F_i, F_i the unit's fan-in.
    "lecun-1998": "all parameters U(-2.4/fan_in, 2.4/fan_in)",
    # The distribution torch.nn.Conv2d/Linear give by default (kaiming_uniform_ with
    # a=sqrt(5) for weights, the same bound for biases), which the seed tutorials trained with.
    "fan-in-uniform": "weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))",
    # d2l's init_weights: nn.init.xavier_uniform_ on conv and linear weights; biases keep
    # torch's default bound.
    "xavier-uniform": "weights U(-a, a), a = sqrt(6/(fan_in+fan_out)); biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))",
}


def _bound(scheme: str, p: ParamSpec) -> float:
    if scheme == "lecun-1998":
        return 2.4 / p.fan_in
    if scheme == "fan-in-uniform" or not p.weight:
        return 1.0 / math.sqrt(p.fan_in)
    if scheme == "xavier-uniform":
        return math.sqrt(6.0 / (p.fan_in + p.fan_out))
    raise ValueError(f"unknown init scheme {scheme!r}; choose from {', '.join(SCHEMES)}")


def init_params(variant: Variant, seed: int = 0) -> dict[str, np.ndarray]:
    """Initial state of `variant`: name -> array in the spec's layout, every parameter (float32)
    and every buffer (float32 running statistics, int64 counters).

    Args:
        variant: the network.
        seed: the only source of randomness; the same seed gives the same arrays.
    Returns:
        A dict in `variant.state()` order.
    """
    rng = np.random.default_rng(seed)
    drawn = {}
    for p in variant.params():
        if p.initial is not None:  # a constant (BatchNorm's scale and shift): no draw
            drawn[p.name] = np.full(p.shape, p.initial, dtype=np.float32)
        else:
            bound = _bound(variant.init, p)
            drawn[p.name] = rng.uniform(-bound, bound, size=p.shape).astype(np.float32)
    for b in variant.buffers():
        drawn[b.name] = np.full(b.shape, b.initial, dtype=np.int64 if b.dtype == "int64" else np.float32)
    return {s.name: drawn[s.name] for s in variant.state()}
