"""The weight mapping between the spec, torch and paddle: one table, applied through NumPy.

Layouts, per parameter role:

    role                    spec                torch               paddle
    conv.weight             (out, in, kh, kw)   (out, in, kh, kw)   (out, in, kh, kw)
    conv.bias               (out,)              (out,)              (out,)
    dense.weight            (out, in)           (out, in)           (in, out)   <- transposed
    dense.bias              (out,)              (out,)              (out,)
    subsample.coefficient   (maps,)             (maps,)             (maps,)
    subsample.bias          (maps,)             (maps,)             (maps,)
    batchnorm.weight        (C,)                (C,)                (C,)
    batchnorm.bias          (C,)                (C,)                (C,)
    batchnorm.running_mean  (C,) running_mean   (C,) running_mean   (C,) _mean        <- renamed (a buffer)
    batchnorm.running_var   (C,) running_var    (C,) running_var    (C,) _variance    <- renamed (a buffer)
    batchnorm.num_batches_tracked  () int64     () int64            () int64          (a buffer)

Each ParamSpec and BufferSpec (lenet_spec.layers) carries its row: `transposed` (the frameworks
whose layout is the spec's transposed) and `renamed` ((framework, attribute) where a framework
names it its own way); `table(variant)` reads them, and nothing here knows the layer types.
Both models register their layers under the spec's layer names, and their parameters and
buffers under the spec's attribute names except where a framework names a buffer its own way
(paddle's BatchNorm keeps `_mean` and `_variance`). Buffers travel like parameters, so
a round trip is bit-exact for the whole state. `num_batches_tracked` is torch's count of
training batches; paddle's BatchNorm has none, and the project's paddle model keeps one so that
nothing of a torch checkpoint is lost (no computation reads it: momentum is always set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .checkpoint import state_mismatch
from .frameworks import NAMES
from .layers import BufferSpec, Variant
from .variants import get_variant

SIDES = ("spec", *NAMES)  # the spec's own layout, then every framework's


class MappingError(ValueError):
    """A state dict that does not match the variant on its side."""


@dataclass(frozen=True)
class Entry:
    """One parameter or buffer: its name and shape on each side, and whether each side transposes it."""

    role: str
    names: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    transposed: dict[str, bool]
    buffer: bool = False


def table(variant: Variant | str) -> tuple[Entry, ...]:
    """The mapping table of `variant`, one entry per parameter and buffer, in spec order."""
    if isinstance(variant, str):
        variant = get_variant(variant)
    entries = []
    for p in variant.state():
        unknown = {*p.transposed, *dict(p.renamed)} - set(NAMES)
        if unknown:
            raise ValueError(f"{p.name}: transposed or renamed for unknown frameworks {sorted(unknown)}")
        flips = {side: side in p.transposed for side in SIDES}
        renamed = dict(p.renamed)
        layer, attr = p.name.rsplit(".", 1)
        entries.append(
            Entry(
                role=p.role,
                names={side: f"{layer}.{renamed.get(side, attr)}" for side in SIDES},
                shapes={side: p.shape[::-1] if flips[side] else p.shape for side in SIDES},
                transposed=flips,
                buffer=isinstance(p, BufferSpec),
            )
        )
    return tuple(entries)


def expected_shapes(variant: Variant | str, side: str) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter on `side`."""
    return {e.names[side]: e.shapes[side] for e in table(variant)}


def convert(state: Mapping[str, np.ndarray], variant: Variant | str, src: str, dst: str, params_only: bool = False) -> dict[str, np.ndarray]:
    """Re-express `state` from `src`'s names and layouts in `dst`'s.

    Args:
        state: name -> array on side `src`.
        variant: the network the state belongs to.
        src, dst: sides of SIDES: "spec" or a framework of lenet_spec.frameworks.NAMES.
        params_only: `state` holds the parameters alone (gradients, say), no buffers.
    Returns:
        A new dict of contiguous arrays (values and dtypes unchanged: bit-exact).
    Raises:
        MappingError: listing missing, unexpected and mis-shaped keys.
    """
    if isinstance(variant, str):
        variant = get_variant(variant)
    for side in (src, dst):
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}; choose from {SIDES}")
    entries = [e for e in table(variant) if not (params_only and e.buffer)]
    problem = state_mismatch({e.names[src]: e.shapes[src] for e in entries}, state)
    if problem:
        raise MappingError(f"{variant.name}: {src} state does not match the variant: {problem}")
    out = {}
    for e in entries:
        array = np.asarray(state[e.names[src]])
        if e.transposed[src] != e.transposed[dst]:
            array = array.T
        assert array.shape == e.shapes[dst], (e.names[dst], array.shape, e.shapes[dst])
        out[e.names[dst]] = np.array(array, order="C")  # a C-ordered copy; np.ascontiguousarray would make a 0-d count 1-d
    return out


def torch_to_paddle(state: Mapping[str, np.ndarray], variant: Variant | str) -> dict[str, np.ndarray]:
    return convert(state, variant, src="torch", dst="paddle")


def paddle_to_torch(state: Mapping[str, np.ndarray], variant: Variant | str) -> dict[str, np.ndarray]:
    return convert(state, variant, src="paddle", dst="torch")
