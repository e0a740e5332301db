"""The checkpoint envelope both frameworks write, and the atomic write they share.

A checkpoint is a dict: format markers, the framework that wrote it, the variant, the spec
version, and `state_dict` (name -> tensor, in the writing framework's layout). Each
framework package stores it with its own serialiser (torch.save / paddle.save); the
checking is done here, once, on NumPy arrays. Plain state dicts (no envelope) are accepted
when the caller names the variant.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .variants import VARIANTS

FORMAT = "lenet-parity-checkpoint"
FORMAT_VERSION = 1
SPEC_VERSION = "1"
SUFFIXES = {"torch": ".pt", "paddle": ".pdparams"}


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, of another variant, or mismatched keys."""


@dataclass
class Checkpoint:
    framework: str
    variant: str
    state: dict[str, np.ndarray]  # in `framework`'s layout
    meta: dict[str, Any] = field(default_factory=dict)  # everything else in the envelope


def framework_of(path: str | os.PathLike) -> str:
    """'torch' for .pt / .pth, 'paddle' for .pdparams; CheckpointError otherwise."""
    suffix = Path(path).suffix
    if suffix in (".pt", ".pth"):
        return "torch"
    if suffix == ".pdparams":
        return "paddle"
    raise CheckpointError(f"{path}: unknown checkpoint suffix {suffix!r}; use .pt (torch) or .pdparams (paddle)")


def envelope(framework: str, variant: str, state: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The dict a framework package serialises; `state` holds that framework's tensors."""
    if variant not in VARIANTS:
        raise CheckpointError(f"unknown variant {variant!r}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framework": framework,
        "variant": variant,
        "spec_version": SPEC_VERSION,
        **extra,
        "state_dict": dict(state),
    }


def parse(obj: Any, path: str | os.PathLike, framework: str, to_numpy: Callable[[Any], np.ndarray], variant: str | None = None) -> Checkpoint:
    """Check a loaded object and return it as a Checkpoint of NumPy arrays.

    Args:
        obj: what torch.load / paddle.load returned.
        path: for error messages.
        framework: the framework whose loader read it.
        to_numpy: that framework's tensor -> ndarray.
        variant: the variant the caller expects; required for a plain state dict.
    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict")
    if obj.get("format") == FORMAT:
        if obj.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {obj.get('format_version')} is not {FORMAT_VERSION}")
        if obj.get("framework") != framework:
            raise CheckpointError(f"{path}: written by {obj.get('framework')}, but its suffix says {framework}; rename it to {SUFFIXES.get(obj.get('framework'), '?')}")
        found = obj.get("variant")
        if found not in VARIANTS:
            raise CheckpointError(f"{path}: unknown variant {found!r}")
        if variant is not None and variant != found:
            raise CheckpointError(f"{path}: holds variant {found!r}, not {variant!r}")
        raw_state = obj.get("state_dict")
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
    else:
        if variant is None:
            raise CheckpointError(f"{path}: a plain state dict does not say its variant; pass --variant NAME")
        raw_state, meta, found = obj, {}, variant
    if not isinstance(raw_state, dict) or not raw_state:
        raise CheckpointError(f"{path}: has no state dict")
    try:
        state = {str(k): np.asarray(to_numpy(v)) for k, v in raw_state.items()}
    except Exception as e:  # a value that is no tensor
        raise CheckpointError(f"{path}: state dict holds something that is not a tensor ({e})") from None
    return Checkpoint(framework, found, state, meta)


def state_mismatch(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Any]) -> str:
    """'' when `state` has exactly the expected names and shapes, else a one-line report
    listing the missing, unexpected and mis-shaped keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(np.shape(state[k]))} != {tuple(expected[k])}"
        for k in expected
        if k in state and tuple(np.shape(state[k])) != tuple(expected[k])
    ]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    if misshaped:
        parts.append(f"mis-shaped [{', '.join(misshaped)}]")
    return "; ".join(parts)


def reason(error: BaseException) -> str:
    """The informative line of a loader's exception message, at most 200 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = next((line for line in lines if "error:" in line.lower()), lines[0] if lines else type(error).__name__)
    return line if len(line) <= 200 else line[:197] + "..."


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place, so
    `path` is either the old file or the complete new one, never a partial write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
