"""torch checkpoints (.pt) in the lenet_spec envelope, written atomically. Mirrors lenet_paddle/checkpoint.py."""

from __future__ import annotations

import io
import os
import re
import zipfile
from typing import Any

import numpy as np
import torch

import lenet_spec
from lenet_spec.checkpoint import MAX_BYTES, Checkpoint, CheckpointError, atomic_write, envelope, format_of, parse, read, reason, sha256
from lenet_spec.safe_pickle import MAX_DEPTH, UnsafePickle, decoded_size, shown

from .bridge import load_state_numpy, state_numpy
from .model import LeNet, build

FRAMEWORK = "torch"


def save_state(path: str | os.PathLike, variant: str | lenet_spec.Variant, state: dict[str, np.ndarray], **extra: Any) -> None:
    """Write `state` (torch layout) with its variant (a built-in name or a Variant) and its spec; `extra` goes into the envelope."""
    tensors = {k: torch.from_numpy(np.array(v, order="C")) for k, v in state.items()}
    payload = envelope(FRAMEWORK, variant, tensors, framework_version=str(torch.__version__), **extra)
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def save(path: str | os.PathLike, model: LeNet, **extra: Any) -> None:
    """Write `model`'s weights with its variant and spec."""
    save_state(path, model.variant, state_numpy(model), **extra)


def loads(data: bytes, where: str | os.PathLike, variant: str | lenet_spec.Variant | None = None) -> Checkpoint:
    """A .pt file's bytes as a Checkpoint of NumPy arrays, through torch.load(weights_only=True),
    which builds tensors and containers only. A zip that would unpack to more than MAX_BYTES
    is refused before torch reads it.

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                unpacked = sum(i.file_size for i in z.infolist())
        except (zipfile.BadZipFile, ValueError, EOFError) as e:
            raise CheckpointError(f"{where}: not a readable {FRAMEWORK} checkpoint (damaged zip: {e})") from None
        if unpacked > MAX_BYTES:
            raise CheckpointError(
                f"{where}: its zip unpacks to {unpacked / 2**20:,.0f} MiB, more than a LeNet checkpoint holds (at most {MAX_BYTES >> 20} MiB "
                f"are read); not reading it"
            )
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a damaged file
        raise CheckpointError(f"{where}: {refusal(e)}") from None
    try:
        aliased = next(((keys, t) for keys, t in tensors(obj, (), set()) if not owns_its_bytes(t)), None)  # first: it bounds the depth
        decoded_size(obj, {}, MAX_BYTES)  # what its containers make when copied (convert writes metadata as JSON)
    except UnsafePickle as e:
        raise CheckpointError(f"{where}: not a readable {FRAMEWORK} checkpoint ({e})") from None
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from None
    if aliased:
        keys, t = aliased
        name = ".".join(k if isinstance(k, str) and len(k) <= 40 else shown(k) for k in keys)
        raise CheckpointError(
            f"{where}: {name} claims {tuple(t.shape)} {str(t.dtype).removeprefix('torch.')} on {t.untyped_storage().nbytes():,} bytes of "
            f"storage (strides {t.stride()}: a small file posing as a large tensor); refused, nothing was built from it"
        )
    ckpt = parse(obj, where, FRAMEWORK, lambda t: t.detach().cpu().numpy(), variant)
    ckpt.sha256 = sha256(data)
    return ckpt


def owns_its_bytes(t: torch.Tensor) -> bool:
    """A dense, contiguous tensor whose storage holds every element it claims: not a view whose
    strides alias few bytes (torch.save keeps `expand`'s zero strides: 8 bytes posing as 5 GB)."""
    return t.layout == torch.strided and t.is_contiguous() and t.untyped_storage().nbytes() >= (t.storage_offset() + t.numel()) * t.element_size()


def tensors(obj: Any, keys: tuple, seen: set[int]):
    """(keys, tensor) for each tensor in what torch.load returned, each container visited once
    (a pickle's memo lets one appear many times)."""
    if isinstance(obj, torch.Tensor):
        yield keys, obj
    elif isinstance(obj, (dict, list, tuple)) and id(obj) not in seen:
        if len(keys) > MAX_DEPTH:
            raise CheckpointError(f"it nests deeper than {MAX_DEPTH}")
        seen.add(id(obj))
        for k, v in obj.items() if isinstance(obj, dict) else enumerate(obj):
            yield from tensors(v, (*keys, k), seen)


def refusal(error: Exception) -> str:
    """torch.load's error as one line. Its weights-only refusal opens with advice to retry
    without weights_only, which would run the file's code: that paragraph is dropped."""
    text = str(error)
    unsafe = re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe:
        return f"it asks to call {unsafe.group(1)}, which torch.load(weights_only=True) refuses (a file that runs code when loaded); refused, nothing was run"
    if text.startswith("Weights only load failed"):
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        text = paragraphs[1] if len(paragraphs) > 1 else "a structure torch's weights-only reader refuses"
    return f"not a readable {FRAMEWORK} checkpoint ({reason(RuntimeError(text))})"


def load(path: str | os.PathLike, variant: str | lenet_spec.Variant | None = None) -> Checkpoint:
    """Read a .pt checkpoint (or a plain state dict, given `variant`) as NumPy arrays.

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    if format_of(path) != FRAMEWORK:
        raise CheckpointError(f"{path}: lenet_{FRAMEWORK}.load reads .pt files; lenet_spec.load.load_checkpoint reads every format")
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
