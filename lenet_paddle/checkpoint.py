"""paddle checkpoints (.pdparams) in the lenet_spec envelope, written atomically. Mirrors lenet_torch/checkpoint.py."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import paddle

import lenet_spec
from lenet_spec.checkpoint import Checkpoint, CheckpointError, atomic_write, envelope, format_of, loads_paddle, read

from .bridge import load_state_numpy, state_numpy
from .model import LeNet, build

FRAMEWORK = "paddle"


def save_state(path: str | os.PathLike, variant: str | lenet_spec.Variant, state: dict[str, np.ndarray], **extra: Any) -> None:
    """Write `state` (paddle layout) with its variant (a built-in name or a Variant) and its spec; `extra` goes into the envelope."""
    tensors = {k: paddle.to_tensor(np.array(v, order="C")) for k, v in state.items()}
    payload = envelope(FRAMEWORK, variant, tensors, framework_version=str(paddle.__version__), **extra)
    atomic_write(path, lambda tmp: paddle.save(payload, tmp))


def save(path: str | os.PathLike, model: LeNet, **extra: Any) -> None:
    """Write `model`'s weights with its variant and spec."""
    save_state(path, model.variant, state_numpy(model), **extra)


def loads(data: bytes, where: str | os.PathLike, variant: str | lenet_spec.Variant | None = None) -> Checkpoint:
    """A .pdparams file's bytes as a Checkpoint of NumPy arrays. Never paddle.load, which
    unpickles without restriction: lenet_spec.safe_pickle builds what paddle.save writes and
    refuses everything else (so this needs no paddle at all).

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    return loads_paddle(data, where, variant)


def load(path: str | os.PathLike, variant: str | lenet_spec.Variant | None = None) -> Checkpoint:
    """Read a .pdparams checkpoint (or a plain state dict, given `variant`) as NumPy arrays.

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    if format_of(path) != FRAMEWORK:
        raise CheckpointError(f"{path}: lenet_{FRAMEWORK}.load reads .pdparams files; lenet_spec.load.load_checkpoint reads every format")
    return loads(read(path), path, variant)


def load_model(path: str | os.PathLike, variant: str | lenet_spec.Variant | None = None) -> LeNet:
    """A model holding a checkpoint's weights, in the checkpoint's dtype, built from the spec it carries."""
    ckpt = load(path, variant)
    model = build(ckpt.spec, dtype=ckpt.dtype)
    try:
        load_state_numpy(model, ckpt.state)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return model
