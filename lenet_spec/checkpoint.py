"""The checkpoint envelope both frameworks write, the atomic write they share, and the
reading of files from strangers: size-bounded, recognised by their bytes, never unpickled
without restriction.

A checkpoint is a dict: format markers, the framework that wrote it, the variant's name, the spec
version, `spec` (the network itself, as spec-file text: lenet_spec.specfile), and `state_dict`
(name -> tensor, in the writing framework's layout). Each
framework package stores it with its own serialiser (torch.save / paddle.save); the
checking is done here, once, on NumPy arrays. Plain state dicts (no envelope) are accepted
when the caller names the variant.

Every checkpoint written carries its network's spec, built-in variants' too: a checkpoint of a
network read from a spec file then loads anywhere, without that file. On reading, the spec is
parsed as data (lenet_spec.specfile.loads: TOML, at most specfile.MAX_BYTES, never executed);
a name that is not a built-in variant's is accepted only with a spec of that name, and a spec
under a built-in name must be that variant (its title aside). Checkpoints written before the
spec was recorded (no `spec` key) load as before: their name must be a built-in variant's.

Three file formats, told apart by their first bytes (the suffix must agree):
  - `.pt` / `.pth`: torch.save's zip (or its legacy pickle), read by `torch.load(weights_only=True)`
    in lenet_torch.checkpoint;
  - `.pdparams`: paddle.save's pickle, read here by `safe_pickle` (NumPy only: no paddle needed);
  - `.safetensors`: a JSON header and raw tensors, which cannot carry code (NumPy only), in
    the layout of the framework its metadata names.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from . import safe_pickle
from .safe_pickle import shown
from . import specfile
from .frameworks import NAMES
from .layers import Variant
from .variants import VARIANTS

FORMAT = "lenet-parity-checkpoint"
FORMAT_VERSION = 1
SPEC_VERSION = "1"
SUFFIXES = {"torch": ".pt", "paddle": ".pdparams", "safetensors": ".safetensors"}
FORMATS = {".pt": "torch", ".pth": "torch", ".pdparams": "paddle", ".safetensors": "safetensors"}
DESCRIPTIONS = {"torch": "a torch checkpoint (torch.save's zip)", "paddle": "a paddle checkpoint (paddle.save's pickle)", "safetensors": "a safetensors file"}
# The largest checkpoint this project writes is lenet-caffe in float64 with Adam's two moments,
# about 10 MiB; a LeNet checkpoint 6x that size is not one, and is not read.
MAX_BYTES = 64 << 20
# torch.save's legacy (non-zip) format opens with a pickled magic number (torch/serialization.py).
_TORCH_LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, unsafe, of another variant, or mismatched keys."""


@dataclass
class Checkpoint:
    framework: str | None  # whose layout `state` is in; None: a plain safetensors state dict, layout not yet known
    variant: str
    state: dict[str, np.ndarray]  # parameters and buffers, in `framework`'s layout
    meta: dict[str, Any] = field(default_factory=dict)  # everything else in the envelope
    sha256: str = ""  # of the file's bytes, when read from a file
    spec: Variant | None = None  # the network the state is of: its embedded spec, or the built-in variant; None for ANY_MODEL

    @property
    def dtype(self) -> str:
        """The floating dtype of the weights ("float32" or "float64")."""
        return str(next(v.dtype for v in self.state.values() if np.issubdtype(v.dtype, np.floating)))


def format_of(path: str | os.PathLike) -> str:
    """'torch' for .pt / .pth, 'paddle' for .pdparams, 'safetensors' for .safetensors; CheckpointError otherwise."""
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise CheckpointError(f"{path}: unknown checkpoint suffix {suffix!r}; use .pt (torch), .pdparams (paddle) or .safetensors")
    return FORMATS[suffix]


def framework_of(path: str | os.PathLike) -> str:
    """'torch' for .pt / .pth, 'paddle' for .pdparams: the framework whose own format the suffix names."""
    found = format_of(path)
    if found == "safetensors":
        raise CheckpointError(f"{path}: a .safetensors file is no framework's own format here; give .pt (torch) or .pdparams (paddle)")
    return found


def sniff(data: bytes) -> str | None:
    """The format `data` is in, from its first bytes: a framework's name (its own format), 'safetensors' or None."""
    if data[:4] == b"PK\x03\x04" or data.startswith(_TORCH_LEGACY):
        return "torch"
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "paddle"
    if len(data) > 9 and data[8:9] == b"{" and int.from_bytes(data[:8], "little") <= len(data) - 8:
        return "safetensors"
    return None


def read(path: str | os.PathLike) -> bytes:
    """The bytes of checkpoint `path`, checked before anything decodes them: a regular file of
    at most MAX_BYTES whose content is in the format its suffix names.

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    expected = format_of(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path}: is {'a folder' if stat.S_ISDIR(info.st_mode) else 'not a regular file'}, not a checkpoint")
        if info.st_size > MAX_BYTES:
            raise CheckpointError(
                f"{path}: {info.st_size / 2**20:,.0f} MiB is too large for a LeNet checkpoint (at most {MAX_BYTES >> 20} MiB are read); not reading it"
            )
        with open(path, "rb") as f:
            data = f.read(info.st_size + 1)  # +1: a file that grew since stat shows; read(n) allocates n up front
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(data) > info.st_size:
        raise CheckpointError(f"{path}: grew while being read; read it again when it is complete")
    found = sniff(data)
    if found is None:
        raise CheckpointError(f"{path}: not a readable {expected} checkpoint (its first bytes {data[:8]!r} are not those of {DESCRIPTIONS[expected]})")
    if found != expected:
        raise CheckpointError(f"{path}: holds {DESCRIPTIONS[found]}, but its suffix says {expected}; rename it to {SUFFIXES[found]}")
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def loads_paddle(data: bytes, where: str | os.PathLike, variant: str | Variant | None = None) -> Checkpoint:
    """A .pdparams file's bytes as a Checkpoint, through the restricted unpickler: the same
    values paddle's own loader gives (return_numpy=True), with no code of the file's run.

    Raises:
        CheckpointError: one line; for a file that asks to run code, it says so.
    """
    try:
        obj = safe_pickle.loads(data, MAX_BYTES)  # safe: the restricted unpickler; decoding no more than the largest file read
    except safe_pickle.ForbiddenGlobal as e:
        raise CheckpointError(f"{where}: {e}") from None
    except safe_pickle.UnsafePickle as e:
        raise CheckpointError(f"{where}: not a readable paddle checkpoint ({e})") from None
    ckpt = parse(obj, where, "paddle", np.asarray, variant)
    ckpt.sha256 = sha256(data)
    return ckpt


SAFETENSORS_HEADER_MAX = 1 << 20  # a LeNet file's header is a few KiB


def loads_safetensors(data: bytes, where: str | os.PathLike, variant: str | Variant | None = None) -> Checkpoint:
    """A .safetensors file's bytes as a Checkpoint. With this project's metadata its layout is
    the framework the metadata names; a plain state dict (any other writer's) comes back with
    framework None, for the caller to settle from the shapes (lenet_spec.load.load_checkpoint).

    Raises:
        CheckpointError: one line.
    """
    try:
        from safetensors.numpy import load
    except ImportError:
        raise CheckpointError(f"{where}: reading .safetensors needs the safetensors package: pip install safetensors") from None
    size = int.from_bytes(data[:8], "little")
    try:
        if size > SAFETENSORS_HEADER_MAX:
            raise ValueError(f"a {size:,}-byte header")
        header = _json(data[8 : 8 + size])
        metadata = header.get("__metadata__") or {}
        tensors = load(data)
    except Exception as e:  # safetensors raises its own SafetensorError; json its decode errors
        raise CheckpointError(f"{where}: not a readable safetensors file ({' '.join(str(e).split())[:150]})") from None
    if metadata.get("format") == FORMAT:
        try:
            envelope_ = {k: metadata[k] for k in ("format", "framework", "variant", "spec_version")}
            envelope_["format_version"] = int(metadata["format_version"])
            if "spec" in metadata:
                envelope_["spec"] = metadata["spec"]
            extra = _json(metadata.get("envelope", "{}"))
            if not isinstance(extra, dict):
                raise ValueError("envelope is not a JSON object")
        except (KeyError, ValueError) as e:
            raise CheckpointError(f"{where}: its lenet-parity metadata is damaged ({type(e).__name__}: {e})") from None
        if envelope_["framework"] not in NAMES:
            raise CheckpointError(f"{where}: its metadata names the layout {shown(envelope_['framework'])}, not torch or paddle")
        obj = {**extra, **envelope_, "state_dict": tensors}
        ckpt = parse(obj, where, envelope_["framework"], np.asarray, variant)
    else:
        ckpt = parse(tensors, where, None, np.asarray, variant)
    ckpt.sha256 = sha256(data)
    return ckpt


def _json(text: str | bytes) -> Any:
    """json.loads, with JSON nested past Python's recursion limit a ValueError, not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("its JSON nests too deep for a checkpoint's") from None


def save_safetensors(path: str | os.PathLike, framework: str, variant: str | Variant, state: Mapping[str, np.ndarray], **extra: Any) -> None:
    """Write `state` (in `framework`'s layout) as .safetensors, with the envelope as metadata
    (strings: the markers, the spec's text, and everything else as one JSON object), written atomically.
    Readable with safetensors.torch / safetensors.paddle / safetensors.numpy's load_file."""
    from safetensors.numpy import save

    env = envelope(framework, variant, {}, **extra)
    env.pop("state_dict")
    metadata = {k: str(env.pop(k)) for k in ("format", "format_version", "framework", "variant", "spec_version", "spec")}
    metadata["envelope"] = json.dumps(env)
    raw = save({k: np.asarray(v, order="C") for k, v in state.items()}, metadata=metadata)  # not ascontiguousarray: it makes a 0-d count 1-d
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(raw))


def network(variant: str | Variant) -> Variant:
    """`variant` as a Variant: a Variant as it is, a name as the built-in variant of that name.

    Raises:
        CheckpointError: a name that is no built-in variant's.
    """
    if isinstance(variant, Variant):
        return variant
    if variant not in VARIANTS:
        raise CheckpointError(f"unknown variant {variant!r}")
    return VARIANTS[variant]


def envelope(framework: str, variant: str | Variant, state: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The dict a framework package serialises; `state` holds that framework's tensors. `variant`
    is a built-in variant's name or any Variant; its spec goes in as spec-file text."""
    spec = network(variant)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framework": framework,
        "variant": spec.name,
        "spec_version": SPEC_VERSION,
        "spec": specfile.dumps(spec),
        **extra,
        "state_dict": dict(state),
    }


# the `variant` that parse takes for the weights of a user's own model (parity.diff --weights): any
# state dict of tensors, the shapes checked against the model by the caller
ANY_MODEL = "(any model)"


def embedded_spec(obj: Mapping[str, Any], found: str, path: str | os.PathLike) -> Variant | None:
    """The network an envelope's `spec` describes (None when it has none: written before the spec
    was recorded), checked against the name the envelope gives (`found`).

    Raises:
        CheckpointError: a spec that is no text, too large, not a readable spec, of another name,
            or under a built-in variant's name but another network.
    """
    if "spec" not in obj:
        return None
    text = obj["spec"]
    if not isinstance(text, str):
        raise CheckpointError(f"{path}: its spec is {shown(text)}, not the text of a spec file; the checkpoint is damaged")
    if len(text) > specfile.MAX_BYTES:
        raise CheckpointError(
            f"{path}: its spec is {len(text):,} characters, more than a network's spec ({specfile.MAX_BYTES >> 10} KiB at most); not reading it"
        )
    try:
        spec = specfile.loads(text, f"{path}: its spec")
    except specfile.SpecError as e:
        raise CheckpointError(f"{e} (the checkpoint is damaged)") from None
    if spec.name != found:
        raise CheckpointError(f"{path}: its spec is of {spec.name!r:.60}, but it says it holds {shown(found)}; the checkpoint is damaged")
    builtin = VARIANTS.get(found)
    if builtin is not None:
        if replace(spec, title=builtin.title) != builtin:
            raise CheckpointError(
                f"{path}: holds a network named {found!r}, a built-in variant's name, whose spec is not that variant's; it is another network (or damaged)"
            )
        return builtin
    return spec


def parse(obj: Any, path: str | os.PathLike, framework: str, to_numpy: Callable[[Any], np.ndarray], variant: str | Variant | None = None) -> Checkpoint:
    """Check a loaded object and return it as a Checkpoint of NumPy arrays.

    Args:
        obj: what torch.load / the restricted unpickler / safetensors returned.
        path: for error messages.
        framework: the framework whose format the file is in (None: safetensors, any layout).
        to_numpy: that framework's tensor -> ndarray.
        variant: the variant the caller expects (a built-in variant's name or a Variant, which
            the checkpoint's spec must equal); required for a plain state dict.
    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a checkpoint dict")
    if obj.get("format") == FORMAT:
        if obj.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format version {shown(obj.get('format_version'))} is not {FORMAT_VERSION}")
        writer = obj.get("framework")
        if framework is not None and writer != framework:
            hint = f"rename it to {SUFFIXES[writer]}" if writer in NAMES else "it is damaged"
            raise CheckpointError(f"{path}: written by {shown(writer)}, but its suffix says {framework}; {hint}")
        found = obj.get("variant")
        spec = None
        if variant == ANY_MODEL and isinstance(found, str):
            pass  # parity.diff: a user's own model's weights, whatever the project's checkpoint calls its variant
        elif not isinstance(found, str):
            raise CheckpointError(f"{path}: unknown variant {shown(found)}")
        else:
            spec = embedded_spec(obj, found, path)
            if spec is None and found not in VARIANTS:
                raise CheckpointError(f"{path}: unknown variant {shown(found)}, and the checkpoint carries no spec of it")
            spec = spec or VARIANTS[found]
        if variant not in (None, ANY_MODEL):
            wanted = variant.name if isinstance(variant, Variant) else variant
            if wanted != found:
                raise CheckpointError(f"{path}: holds variant {shown(found)}, not {wanted!r}")
            if isinstance(variant, Variant) and variant != spec:
                raise CheckpointError(
                    f"{path}: holds a {found} whose spec differs from the one given (another network of that name); give the spec it was written with, or none"
                )
        raw_state = obj.get("state_dict")
        meta = {k: v for k, v in obj.items() if k != "state_dict"}
    elif variant == ANY_MODEL:
        raw_state, meta, found, spec = obj, {}, ANY_MODEL, None
    else:
        if variant is None:
            raise CheckpointError(f"{path}: a plain state dict does not say its variant; pass --variant NAME (or a .toml spec file)")
        if not isinstance(variant, Variant) and variant not in VARIANTS:
            raise CheckpointError(f"{path}: unknown variant {variant!r}")
        spec = network(variant)
        raw_state, meta, found = obj, {}, spec.name
    if not isinstance(raw_state, dict) or not raw_state:
        raise CheckpointError(f"{path}: has no state dict")
    try:
        state = {str(k): np.asarray(to_numpy(v)) for k, v in raw_state.items()}
    except Exception as e:  # a value that is no tensor
        raise CheckpointError(f"{path}: state dict holds something that is not a tensor ({' '.join(str(e).split())[:100]})") from None
    odd = next((k for k, v in state.items() if v.dtype not in (np.float32, np.float64, np.int64)), None)
    if odd is not None:
        raise CheckpointError(f"{path}: {odd} holds {state[odd].dtype} values; a LeNet's weights are float32 or float64 (its counters int64)")
    return Checkpoint(framework, found, state, meta, spec=spec)


def state_mismatch(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, Any]) -> str:
    """'' when `state` has exactly the expected names and shapes, else a one-line report
    listing the missing, unexpected and mis-shaped keys."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(np.shape(state[k]))} != {tuple(expected[k])}" for k in expected if k in state and tuple(np.shape(state[k])) != tuple(expected[k])]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if unexpected:
        parts.append(f"unexpected {unexpected}")
    if misshaped:
        parts.append(f"mis-shaped [{', '.join(misshaped)}]")
    return "; ".join(parts)


def misfit(name: str, value: Any, shape: tuple[int, ...], dtype: str, whose: str = "its parameter's") -> str:
    """'' when `value` (a torch tensor or an ndarray from a checkpoint's optimizer state) has
    `shape` and `dtype` (`whose`), else a line saying what it is instead."""
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        return f"{name} is {shown(value)}, not a tensor"
    found = (tuple(value.shape), str(value.dtype).removeprefix("torch."))
    if found != (tuple(shape), dtype):
        return f"{name} is {found[0]} {found[1]}, not {whose} {tuple(shape)} {dtype}"
    return ""


def reason(error: BaseException) -> str:
    """The informative line of a loader's exception message, at most 200 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = next((line for line in lines if "error:" in line.lower()), lines[0] if lines else type(error).__name__)
    return line if len(line) <= 200 else line[:197] + "..."


class WriteError(OSError):
    """An output that could not be written (a full disk, a quota, no permission); the message is
    one line naming the file, and the file is as it was before."""


def write_failure(path: str | os.PathLike, error: BaseException) -> WriteError | None:
    """`error`, raised while writing `path`, as a one-line WriteError; None when it is not a
    failure to write (a bug, an interrupt), which must go on as it is. torch.save reports a full
    disk as a RuntimeError from its zip writer ("[enforce fail at inline_container.cc:672] . unexpected
    pos 576 vs 534", raised from "basic_ios::clear: iostream error")."""
    if isinstance(error, WriteError):
        return error
    if isinstance(error, OSError):
        why = error.strerror or str(error) or type(error).__name__
    elif isinstance(error, RuntimeError) and any(word in f"{error} {error.__context__}".lower() for word in ("write", "inline_container", "iostream")):
        why = "the write failed"
    else:
        return None
    try:
        usage = os.statvfs(Path(path).parent)
        if usage.f_bavail * usage.f_frsize < 1 << 20:
            why = "No space left on device" if why == "the write failed" else why
    except OSError:
        pass
    return WriteError(f"cannot write {path}: {why[:200]}; it was left as it was: free some space or choose another place")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place, so
    `path` is either the old file or the complete new one, never a partial write.

    Raises:
        WriteError: the file could not be written (a full disk...): one line naming it; no
            temporary file is left.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        failure = write_failure(path, e)
        if failure is None:
            raise
        raise failure from None
