"""The weight mapping between the spec, torch and paddle: one table, applied through NumPy.

Layouts, per parameter role:

    role                    spec                torch               paddle
    conv.weight             (out, in, kh, kw)   (out, in, kh, kw)   (out, in, kh, kw)
    conv.bias               (out,)              (out,)              (out,)
    dense.weight            (out, in)           (out, in)           (in, out)   <- transposed
    dense.bias              (out,)              (out,)              (out,)
    subsample.coefficient   (maps,)             (maps,)             (maps,)
    subsample.bias          (maps,)             (maps,)             (maps,)

Names are the same on every side: both models register their layers under the spec's
layer names, and their parameters under the spec's attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from lenet_spec import Variant, get_variant
from lenet_spec.checkpoint import state_mismatch

SIDES = ("spec", "torch", "paddle")

# role -> is the array transposed on each side, relative to the spec
TRANSPOSED = {
    "conv.weight": {"spec": False, "torch": False, "paddle": False},
    "conv.bias": {"spec": False, "torch": False, "paddle": False},
    "dense.weight": {"spec": False, "torch": False, "paddle": True},
    "dense.bias": {"spec": False, "torch": False, "paddle": False},
    "subsample.coefficient": {"spec": False, "torch": False, "paddle": False},
    "subsample.bias": {"spec": False, "torch": False, "paddle": False},
}


class MappingError(ValueError):
    """A state dict that does not match the variant on its side."""


@dataclass(frozen=True)
class Entry:
    """One parameter: its name and shape on each side, and whether each side transposes it."""

    role: str
    names: dict[str, str]
    shapes: dict[str, tuple[int, ...]]
    transposed: dict[str, bool]


def table(variant: Variant | str) -> tuple[Entry, ...]:
    """The mapping table of `variant`, one entry per trainable parameter, in spec order."""
    if isinstance(variant, str):
        variant = get_variant(variant)
    entries = []
    for p in variant.params():
        flips = TRANSPOSED[p.role]
        entries.append(
            Entry(
                role=p.role,
                names={side: p.name for side in SIDES},
                shapes={side: p.shape[::-1] if flips[side] else p.shape for side in SIDES},
                transposed=dict(flips),
            )
        )
    return tuple(entries)


def expected_shapes(variant: Variant | str, side: str) -> dict[str, tuple[int, ...]]:
    """name -> shape of every parameter on `side`."""
    return {e.names[side]: e.shapes[side] for e in table(variant)}


def convert(state: Mapping[str, np.ndarray], variant: Variant | str, src: str, dst: str) -> dict[str, np.ndarray]:
    """Re-express `state` from `src`'s names and layouts in `dst`'s.

    Args:
        state: name -> array on side `src`.
        variant: the network the state belongs to.
        src, dst: "spec", "torch" or "paddle".
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
    entries = table(variant)
    problem = state_mismatch({e.names[src]: e.shapes[src] for e in entries}, state)
    if problem:
        raise MappingError(f"{variant.name}: {src} state does not match the variant: {problem}")
    out = {}
    for e in entries:
        array = np.asarray(state[e.names[src]])
        if e.transposed[src] != e.transposed[dst]:
            array = array.T
        assert array.shape == e.shapes[dst], (e.names[dst], array.shape, e.shapes[dst])
        out[e.names[dst]] = np.ascontiguousarray(array)
    return out


def torch_to_paddle(state: Mapping[str, np.ndarray], variant: Variant | str) -> dict[str, np.ndarray]:
    return convert(state, variant, "torch", "paddle")


def paddle_to_torch(state: Mapping[str, np.ndarray], variant: Variant | str) -> dict[str, np.ndarray]:
    return convert(state, variant, "paddle", "torch")
