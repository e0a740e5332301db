"""Read a stranger's .pdparams file without running its code: a pickle reader that admits only
what `paddle.save` writes for a state dict, and builds even that without calling NumPy or
paddle on the file's bytes until they have been checked.

What `paddle.save` pickles (paddle 2.1-3.3, `paddle/framework/io.py`: `_pickle_save`,
`_legacy_save`; confirmed by disassembling files it wrote with `pickletools`):
  - a Tensor as `tuple((name, ndarray))` (its `reduce_varbase`); a plain state dict of
    tensors as bare ndarrays plus a "StructuredToParameterName@@" name table;
  - an ndarray through NumPy's own reduce: `numpy.core.multiarray._reconstruct` (spelled
    `numpy._core.multiarray` by NumPy 2), `numpy.ndarray`, `numpy.dtype`, and with pickle
    protocol 2 `_codecs.encode` for the raw bytes; a NumPy scalar as `...multiarray.scalar`;
  - `paddle.get_rng_state()` as `paddle.base.libpaddle.GeneratorState` (pybind; this project's
    checkpoints held one until it stored the state as plain data);
  - dicts, lists, tuples, strings, numbers, None through plain opcodes; `collections.OrderedDict`.
Not admitted: `builtins.eval`, which paddle's `reduce_DenseTensor` writes for a static-graph
tensor (a dygraph state dict holds none): eval runs code by design.

Every admitted global is replaced by an inert stand-in (`_Array`, `_Dtype`, ...) that only
records its arguments; `_materialise` then checks them (numeric dtypes only, sizes that match
the bytes, no more array bytes than the file has) and builds plain ndarrays with
`np.frombuffer`. Anything else is refused with `UnsafePickle`, naming the global.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools

import numpy as np

# Dtypes a tensor may have: booleans, integers, floats, complex (NumPy's pickled names).
NUMERIC_DTYPES = frozenset("b1 i1 u1 i2 u2 i4 u4 i8 u8 f2 f4 f8 c8 c16".split())
MAX_DEPTH = 64  # a state dict nests 4 deep (envelope, optimizer, tensor tuple, array)
# What a pickle may decode to, each memo reference counted as the copy np.asarray or a walk
# makes of it: lenet_spec.checkpoint.MAX_BYTES, the largest checkpoint read (a real one decodes
# to about its own size).
MAX_DECODED = 64 << 20


class UnsafePickle(Exception):
    """The pickle is damaged, or holds a structure a paddle state dict never does."""


class ForbiddenGlobal(UnsafePickle):
    """The pickle asks for a function or class that paddle.save never writes: one that could run code."""


class _StandIn:
    """Records how the pickle called it (REDUCE or NEWOBJ) and the state BUILD gives it;
    nothing is checked or built until _Materialiser looks at it."""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.args, self.kwargs, self.state = args, kwargs, None
        return self

    def __setstate__(self, state) -> None:
        self.state = state


class _Array(_StandIn):
    """numpy's `_reconstruct(ndarray, (0,), b'b')`, then BUILD with (1, shape, dtype, fortran, data)."""


class _Dtype(_StandIn):
    """`numpy.dtype(name, align, copy)`, then BUILD with (version, byte order, sub-array, names, fields, ...)."""


class _Scalar(_StandIn):
    """numpy's `scalar(dtype, bytes)`."""


class _GeneratorState(_StandIn):
    """paddle's RNG state: NEWOBJ, then BUILD with the tuple its pybind __setstate__ parses."""


class _NdarrayToken:
    """Stands for `numpy.ndarray`, which may only appear as _reconstruct's first argument
    (calling it with a stranger's shape would allocate that much memory)."""


_NDARRAY = _NdarrayToken()


def _latin1(text, encoding="latin1"):
    """`_codecs.encode(str, 'latin1')`: how pickle protocol 2 spells bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle(f"_codecs.encode with {shown(encoding)}")
    return text.encode("latin1")


_ADMITTED = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy.core.multiarray", "scalar"): _Scalar,
    ("numpy._core.multiarray", "scalar"): _Scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _latin1,
    ("builtins", "tuple"): tuple,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("paddle.base.libpaddle", "GeneratorState"): _GeneratorState,  # paddle 2.5-3.x
    ("paddle.fluid.libpaddle", "GeneratorState"): _GeneratorState,  # paddle 2.3-2.4
    ("paddle.fluid.core_avx", "GeneratorState"): _GeneratorState,  # paddle 2.0-2.2
}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ADMITTED[module, name]
        except KeyError:
            raise ForbiddenGlobal(
                f"it asks to call {module}.{name}, which paddle.save never writes (a file that runs code when loaded); refused, nothing was run"
            ) from None

    def persistent_load(self, pid):
        raise ForbiddenGlobal("it holds a persistent id, which paddle.save never writes; refused, nothing was run")


def loads(data: bytes, max_decoded: int = MAX_DECODED) -> object:
    """What paddle's loader returns (with return_numpy=True) for a file holding `data`: latin-1
    strings from Python 2 pickles, a Tensor's (name, ndarray) as the ndarray, the top-level
    "StructuredToParameterName@@" name table dropped; RNG states as plain tuples.

    Raises:
        UnsafePickle: a global, a dtype or a structure paddle never writes (nothing was run),
            or a damaged pickle.
    """
    try:
        _check_sizes(data)
        raw = _Unpickler(io.BytesIO(data), encoding="latin1").load()
        obj = _Materialiser(len(data)).build(raw, 0)
        decoded_size(obj, {}, max_decoded)
        if isinstance(obj, dict):
            obj.pop("StructuredToParameterName@@", None)
        return obj
    except UnsafePickle:
        raise
    except RecursionError:
        raise UnsafePickle("the pickle nests too deep") from None
    except Exception as e:  # pickle raises many kinds for damaged bytes
        raise UnsafePickle(f"not a readable pickle ({type(e).__name__}: {' '.join(str(e).split())[:100]})") from None


def _check_sizes(data: bytes) -> None:
    """What the C unpickler would allocate on the pickle's word, checked first (found by fuzzing):
    every length an opcode declares must fit the bytes that follow (it allocates a BINBYTES8's
    declared 20 GB before reading them), and every memo index must be the next one or an earlier
    one (it grows its memo table to the index asked for: 15 GB for a one-byte change)."""
    memo = 0
    for op, arg, _ in pickletools.genops(data):  # raises ValueError where a declared length overruns the data
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            if arg > memo:
                raise UnsafePickle(f"a memo index {arg:,} beyond the {memo:,} objects stored so far")
            memo += arg == memo
        elif op.name == "MEMOIZE":
            memo += 1


def decoded_size(obj, sizes: dict[int, int], limit: int) -> int:
    """Bytes `obj` decodes to when every reference is copied (as np.asarray copies a list that
    holds one list many times): 8 a number, arrays their bytes; `sizes` memoises each container
    once, so this takes one pass over the pickle's distinct objects, never over the copies.

    Raises:
        UnsafePickle: a container whose copies pass `limit`.
    """
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.nbytes
    if isinstance(obj, (str, bytes)):
        return 8 + len(obj)
    if not isinstance(obj, (list, tuple, dict)):
        return 8
    key = id(obj)
    if key not in sizes:
        sizes[key] = 8  # a container met again inside itself (a cycle) is counted once
        size = 8 + sum(decoded_size(v, sizes, limit) for v in (obj.values() if isinstance(obj, dict) else obj))
        if size > limit:
            raise UnsafePickle(f"it decodes to more than {limit >> 20} MiB (one object referenced many times through the pickle's memo)")
        sizes[key] = size
    return sizes[key]


def shown(value, width: int = 40) -> str:
    """`value` rendered for an error message, bounded: never a full repr of an untrusted object
    (a list holding one list many times reprs to gigabytes; an int of 20,000 digits refuses to).

    Returns:
        A short repr of a number, None or a string's first `width` characters; else what it is
        ("a list of 50 items", "a Tensor").
    """
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"a {value.bit_length():,}-bit integer"
    if isinstance(value, (str, bytes)):
        return repr(value[:width]) + ("..." if len(value) > width else "")
    count = f" of {len(value):,} items" if isinstance(value, (list, tuple, dict)) else ""
    return f"a {type(value).__name__.strip('_')}{count}"


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Materialiser:
    """Turns the stand-ins into checked values, once per distinct object (the pickle's memo
    lets one object appear many times)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget  # array bytes left: a file cannot hold more than its own size
        self.done: dict[int, object] = {}

    def build(self, obj, depth: int):
        if depth > MAX_DEPTH:
            raise UnsafePickle(f"the pickle nests deeper than {MAX_DEPTH}")
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if isinstance(obj, dict):  # OrderedDict too
            out: dict = {}
            self.done[key] = out
            for k, v in obj.items():
                if not (k is None or isinstance(k, (bool, int, float, str, bytes))):
                    raise UnsafePickle(f"a dict key of type {type(k).__name__}")
                out[k] = self.build(v, depth + 1)
            return out
        if isinstance(obj, list):
            out_list: list = []
            self.done[key] = out_list
            out_list.extend(self.build(v, depth + 1) for v in obj)
            return out_list
        if isinstance(obj, tuple):
            out_tuple = tuple(self.build(v, depth + 1) for v in obj)
            if len(out_tuple) == 2 and isinstance(out_tuple[0], str) and isinstance(out_tuple[1], np.ndarray):
                out_tuple = out_tuple[1]  # a Tensor (paddle.load's _transformed_from_varbase)
            self.done[key] = out_tuple
            return out_tuple
        if type(obj) is _Array:
            value = self.array(obj)
        elif type(obj) is _Scalar:
            value = self.scalar(obj)
        elif type(obj) is _GeneratorState:
            value = generator_state(obj)
        else:  # a dtype, numpy.ndarray or a function on its own: never a value in a state dict
            raise UnsafePickle(f"a {type(obj).__name__.strip('_')} where a value belongs")
        self.done[key] = value
        return value

    def array(self, a: _Array) -> np.ndarray:
        if a.args != (_NDARRAY, (0,), b"b") or a.kwargs:
            raise UnsafePickle("an ndarray not made as NumPy pickles one (_reconstruct(ndarray, (0,), b'b'))")
        s = a.state
        if not (isinstance(s, tuple) and len(s) == 5 and s[0] == 1 and isinstance(s[1], tuple) and all(_is_count(d) for d in s[1])):
            raise UnsafePickle("an ndarray whose state is not (1, shape, dtype, fortran, bytes)")
        _, shape, dtype, fortran, data = s
        if not isinstance(data, bytes) or not isinstance(fortran, bool):
            raise UnsafePickle("an ndarray whose data are not bytes")
        return self.frombuffer(data, dtype_of(dtype), shape, fortran)

    def scalar(self, a: _Scalar) -> np.generic:
        if len(a.args) != 2 or a.kwargs or not isinstance(a.args[1], bytes):
            raise UnsafePickle("a NumPy scalar that is not (dtype, bytes)")
        return self.frombuffer(a.args[1], dtype_of(a.args[0]), (), False)[()]

    def frombuffer(self, data: bytes, dtype: np.dtype, shape: tuple, fortran: bool) -> np.ndarray:
        size = math.prod(shape) * dtype.itemsize
        if size != len(data):
            raise UnsafePickle(f"an ndarray of shape {shape} {dtype} needs {size:,} bytes, the file gives {len(data):,}")
        self.budget -= size
        if self.budget < 0:
            raise UnsafePickle("its arrays hold more bytes than the file does (one array's bytes reused many times)")
        array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
        return array.astype(dtype.newbyteorder("="))  # a native-order, writable copy


def dtype_of(d) -> np.dtype:
    """A checked _Dtype as a NumPy dtype: numeric, no fields, no sub-array."""
    if type(d) is not _Dtype or d.kwargs or not (1 <= len(d.args) <= 3) or d.args[0] not in NUMERIC_DTYPES:
        raise UnsafePickle(f"dtype {shown(d.args[0] if type(d) is _Dtype and d.args else d)} is not a numeric tensor type")
    s = d.state
    if s is not None and not (isinstance(s, tuple) and len(s) >= 5 and s[1] in ("<", ">", "|", "=") and s[2:5] == (None, None, None)):
        raise UnsafePickle(f"dtype state {shown(s)} is not a plain numeric type's")
    dtype = np.dtype(d.args[0])
    return dtype.newbyteorder(s[1]) if s is not None and s[1] in "<>" else dtype


def generator_state(g: _GeneratorState) -> tuple[int, int, int, list[int]]:
    """A pickled paddle GeneratorState as the plain tuple `rng_state` checks."""
    if g.args or g.kwargs:
        raise UnsafePickle("a GeneratorState made with arguments")
    return rng_state(g.state)


def rng_state(state) -> tuple[int, int, int, list[int]]:
    """paddle's RNG state as plain data, (device, seed, offset, engine), checked: what
    `GeneratorState.__getstate__` returns, whose engine is the text of a std::mt19937 state
    (digits and spaces) as character codes.

    Raises:
        UnsafePickle: anything else.
    """
    ok = (
        isinstance(state, (tuple, list)) and len(state) == 4 and all(isinstance(v, int) and not isinstance(v, bool) for v in state[:3])
        and isinstance(state[3], list) and len(state[3]) <= 1 << 16 and all(isinstance(c, int) and (48 <= c <= 57 or c == 32) for c in state[3])
    )  # fmt: skip
    if not ok:
        raise UnsafePickle("an RNG state that is not (device, seed, offset, mt19937 text) as paddle writes it")
    return state[0], state[1], state[2], list(state[3])
