"""The one reader of every checkpoint format the project takes from its users (NumPy only,
except a .pt file, which only torch.load(weights_only=True) reads)."""

from __future__ import annotations

import os

from .checkpoint import ANY_MODEL, Checkpoint, CheckpointError, format_of, loads_paddle, loads_safetensors, read, sha256, state_mismatch
from .frameworks import NAMES, module
from .layers import Variant
from .mapping import expected_shapes


def load_checkpoint(path: str | os.PathLike, variant: str | Variant | None = None, expected_sha256: str | None = None) -> Checkpoint:
    """Any checkpoint a user gives (.pt, .pdparams, .safetensors; either framework's), read by the
    one safe reader of its format: torch.load(weights_only=True) for .pt (needs torch), the
    restricted unpickler for .pdparams and safetensors for .safetensors (NumPy only).

    Args:
        variant: the variant the file must hold (a built-in name, or a Variant its spec must
            equal); required for a plain state dict. A checkpoint of a network of one's own
            carries its spec: `ckpt.spec` is the network, with no spec file needed.
        expected_sha256: when given, the file's bytes must have this SHA-256 before anything
            decodes them (the bytes checked are the bytes read: no second read).
    Returns:
        The checkpoint, its state in the layout of `ckpt.framework` ('torch' or 'paddle').
    Raises:
        CheckpointError: one line naming the file and the problem.
        FrameworkMissing: a .pt file without torch installed.
    """
    data = read(path)
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise CheckpointError(f"{path}: its SHA-256 is not the {expected_sha256[:12]}... recorded at export; it is not that file (or it has changed since)")
    kind = format_of(path)
    if kind == "paddle":  # paddle.save's pickle, through the restricted unpickler: no paddle needed
        return loads_paddle(data, path, variant)
    if kind == "safetensors":
        ckpt = loads_safetensors(data, path, variant)
        if ckpt.framework is None and variant != ANY_MODEL:  # a user's own model: its caller checks the shapes
            ckpt.framework = layout_of(ckpt, path)
        return ckpt
    return module(kind, "checkpoint").loads(data, path, variant)  # .pt: only torch.load(weights_only=True) reads it


def layout_of(ckpt: Checkpoint, path: str | os.PathLike) -> str:
    """Whose layout a plain state dict is in, from its shapes (paddle's dense weights are torch's
    transposed; no LeNet variant has a square one, so the shapes always tell)."""
    problems = {side: state_mismatch(expected_shapes(ckpt.spec, side), ckpt.state) for side in NAMES}
    fits = [side for side, problem in problems.items() if not problem]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        raise CheckpointError(f"{path}: a plain state dict that is not {ckpt.variant} in torch's layout ({problems['torch']}) nor in paddle's")
    raise CheckpointError(f"{path}: a plain state dict whose layout (torch or paddle) its shapes do not tell; convert it from a .pt or .pdparams file")
