"""A user's paddle model read as a chain of ops (lenet_spec.traced.Trace), for parity.port: the
paddle half of `trace(model, input_shape)`; lenet_torch/importer.py is the torch half.

Paddle has no symbolic tracer (torch.fx's counterpart), so the model is run: one eager forward
pass in float64, in evaluation mode, on a random input of (2, *input_shape), on a deep copy of the
model (or, when the model cannot be copied, on the model itself, cast and restored), so that the
user's model keeps its dtype, mode and weights. Two recorders watch that pass, in call order:

* forward pre/post hooks on the units: paddle's own leaf layers (Conv2D, Linear, the pools,
  BatchNorm, Dropout, Flatten, the activations...) and the user's own layers that own parameters
  directly (seed 004's DownSample), each with its input and output. A unit is one op: nothing
  called inside it is recorded, so nothing is counted twice. Containers (Sequential), the
  user's layers without parameters of their own and the model itself (unless it is a DownSample
  alone: parameters and pools) are transparent: their calls are recorded.
* sys.setprofile, for the functional ops the user's own forward code calls between the layers
  (F.relu, paddle.flatten, x.reshape, F.dropout...): a call of a function of paddle's made from
  a frame of the user's code, its arguments read from the callee's frame and its line from the
  caller's. Measured on paddle 3.3.1, every such function is a Python function, so 'call' and
  'return' events see them: some plainly (F.relu, F.max_pool2d), some through a decorator's
  `wrapper(*args, **kwargs)` that holds the function as `func` (paddle.flatten, x.flatten,
  x.reshape, F.softmax, F.dropout, paddle.concat) or inside `decorated`'s closure (F.relu_,
  x.view), some as generated `_tanh(*args, **kwargs)` (F.tanh, paddle.tanh, x.tanh, F.sigmoid,
  F.gelu). The arithmetic operators (`x * 2`, a residual `a + b`) are C methods of paddle.Tensor
  (method descriptors) that no profile event sees, not even 'c_call', so for the pass they are
  replaced on paddle.Tensor by recording wrappers, put back afterwards (clone, detach and numpy,
  C methods too, hand the data on unchanged or read it: not ops). A C function of paddle's
  called directly (paddle._C_ops.relu: a 'c_call') is recorded as unsupported, its tensors unseen.

Shape-only calls (x.shape, paddle.shape, x.dim()) and calls that take no tensor of the data
path are not ops; what they make (paddle.ones, a reshaped parameter) is a constant, off the chain.
Each op's tensor inputs must be the previous op's output (the model's input for the first), by
identity or by equal values, and the model's return the last op's output: anything else is not a
chain, and parity.port follows chains only (TraceError). An op outside the spec's vocabulary is an
`unsupported` op naming it and its line; parity.port reports the first.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import sys
import threading

import numpy as np
import paddle

from lenet_spec.traced import Op, Trace, TraceError, recognise_subsample

_PADDLE = os.path.join(os.path.dirname(paddle.__file__), "")
_ZOO = os.path.join(_PADDLE, "vision", "models", "")  # paddle.vision's models (its LeNet): read as a user's code
_HERE = os.path.abspath(__file__)
_CONTAINERS = (paddle.nn.Sequential, paddle.nn.LayerList, paddle.nn.LayerDict)
# calls that read a tensor's shape, dtype or value, not ops on the data path
_SHAPE_ONLY = {
    "shape", "numel", "dim", "ndimension", "rank", "size", "numpy", "item", "tolist", "is_floating_point", "is_complex",
    "is_integer", "is_tensor", "is_empty", "get_device", "broadcast_shape", "__len__", "__bool__", "__nonzero__", "__int__",
    "__float__", "__index__", "__repr__", "__str__", "__format__", "__hash__", "__array__", "__complex__", "__long__",
}  # fmt: skip
# calls that hand the data on unchanged (a copy, another device): not ops, their output joins the chain by its values
_PASSTHROUGH = {"clone", "detach", "contiguous", "cpu", "cuda", "to", "assign"}
# paddle.Tensor's arithmetic operators: C methods no profile event sees, wrapped during the pass
_OPERATORS = {
    "__add__": "+", "__radd__": "+", "__sub__": "-", "__rsub__": "-", "__mul__": "*", "__rmul__": "*", "__truediv__": "/",
    "__rtruediv__": "/", "__div__": "/", "__rdiv__": "/", "__floordiv__": "//", "__rfloordiv__": "//", "__mod__": "%",
    "__rmod__": "%", "__pow__": "**", "__rpow__": "**", "__matmul__": "@", "__rmatmul__": "@",
}  # fmt: skip
_ACTIVATIONS = {"ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Identity": "identity"}
_FUNCTIONS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "tanh_": "tanh"}
_NOT_IN_SPEC = "is not in the spec's vocabulary"


def _short(path: str) -> str:
    """A file's name as an op's `where` gives it: its base name, as lenet_torch/importer.py gives it."""
    return os.path.basename(path)


def _is_paddles(filename: str) -> bool:
    """Whether a file is paddle's own (its model zoo, paddle.vision.models, is written as a user
    writes a model: not paddle's own here)."""
    return filename.startswith(_PADDLE) and not filename.startswith(_ZOO)


def _is_user(frame) -> bool:
    """Whether a frame runs the user's code: not paddle's, not this importer's, not Python's frozen
    import machinery."""
    name = frame.f_code.co_filename
    return not (_is_paddles(name) or os.path.abspath(name) == _HERE or name.startswith("<frozen"))


def _paddles_layer(cls: type) -> bool:
    """Whether a layer class is one of paddle's own (Conv2D, Sequential), not a user's or the zoo's."""
    return cls.__module__.startswith("paddle.") and not cls.__module__.startswith("paddle.vision.models")


def _user_line(frame) -> str:
    """FILE:LINE of the innermost frame of the user's code from `frame` outwards, within the pass
    ("" when none: a paddle container's forward called by `trace` itself)."""
    while frame is not None and os.path.abspath(frame.f_code.co_filename) != _HERE:
        if _is_user(frame):
            return f"{_short(frame.f_code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def _tensors(values) -> list:
    """The tensors among call arguments (one level into lists and tuples: paddle.concat's), less
    the model's parameters (a functional op's weight is not on the data path)."""
    found = []
    for v in values:
        for t in v if isinstance(v, (list, tuple)) else (v,):
            if isinstance(t, paddle.Tensor) and not isinstance(t, paddle.base.framework.EagerParamBase):
                found.append(t)
    return found


def _array(t) -> np.ndarray:
    """A float64 NumPy copy of a tensor."""
    return np.array(t.detach().numpy(), dtype=np.float64, copy=True)


def _square(value, what: str) -> tuple[int | None, str]:
    """An int-or-pair attribute as one int, or (None, why) when its two values differ."""
    if isinstance(value, (list, tuple)):
        if len(value) in (1, 2, 4) and len(set(value)) == 1:  # 4: paddle's (top, bottom, left, right) padding
            return int(value[0]), ""
        return None, f"{what} {tuple(value)} is not square; the spec's sizes are one int"
    return int(value), ""


class _Record:
    """One op as the pass saw it: its tensors (kept alive, so identity is meaningful), their values
    and what it was."""

    def __init__(self, name: str, module: str, where: str, inputs: list, layer=None, args: dict | None = None):
        self.name, self.module, self.where, self.layer, self.args = name, module, where, layer, args or {}
        self.inputs = inputs
        self.in_arrays = [_array(t) for t in inputs]
        self.output = None
        self.out_array: np.ndarray | None = None
        self.seen = True  # False: a C call whose tensors the pass cannot see
        self.odd_output = ""

    def finish(self, out) -> None:
        if isinstance(out, paddle.Tensor):
            self.output, self.out_array = out, _array(out)
        elif out is not None:
            self.odd_output = type(out).__name__


class _Recorder:
    """Both recorders of one forward pass (see the module's docstring)."""

    def __init__(self, model: paddle.nn.Layer):
        self.records: list[_Record] = []
        self.open: dict[int, _Record | None] = {}  # id(frame) -> its record (None: a constant's), until it returns
        self.constants: dict[int, paddle.Tensor] = {}  # tensors made from no data (paddle.ones, a reshaped parameter): not on the chain
        self.depth = 0  # units open: inside one, nothing is recorded
        self.thread = threading.get_ident()
        self.error: BaseException | None = None
        self.units: dict[int, tuple[str, str]] = {}  # id(layer) -> (dotted name, "leaf" | "own")
        pools = (paddle.nn.AvgPool2D, paddle.nn.MaxPool2D)
        for name, layer in model.named_sublayers(include_self=True):
            cls = type(layer)
            paddles = _paddles_layer(cls)
            owns = next(iter(layer.parameters(include_sublayers=False)), None) is not None
            if layer is model and not paddles and not all(isinstance(s, pools) for s in layer.sublayers()):
                continue  # the model itself is transparent, unless it is a DownSample alone (its parameters and pools)
            if paddles and not isinstance(layer, _CONTAINERS):
                self.units[id(layer)] = (name, "leaf")
            elif not paddles and owns:
                self.units[id(layer)] = (name, "own")
        self.layers = [layer for _, layer in model.named_sublayers(include_self=True) if id(layer) in self.units]

    def data(self, values) -> list:
        """The tensors on the data path among call arguments: not parameters, not constants."""
        return [t for t in _tensors(values) if id(t) not in self.constants]

    # the hooks
    def before(self, layer, args):
        if self.depth == 0:
            name, _ = self.units[id(layer)]
            self.records.append(_Record(type(layer).__name__, name, _user_line(sys._getframe(1)), _tensors(args), layer=layer))
            self.open[id(layer)] = self.records[-1]
        self.depth += 1

    def after(self, layer, args, out):
        self.depth -= 1
        if self.depth == 0 and id(layer) in self.open:
            self.open.pop(id(layer)).finish(out)

    # sys.setprofile
    def profile(self, frame, event, arg):
        try:
            if self.depth or threading.get_ident() != self.thread:
                return
            if event == "call":
                caller = frame.f_back
                if caller is None or not _is_paddles(frame.f_code.co_filename) or not _is_user(caller):
                    return
                self._call(frame, caller)
            elif event == "return" and id(frame) in self.open:
                record = self.open.pop(id(frame))
                if record is None:
                    if isinstance(arg, paddle.Tensor):
                        self.constants[id(arg)] = arg
                    return
                if "processed_args" in frame.f_locals:  # paddle's alias decorator: the arguments as the function took them
                    record.args = _bind(record.args.get("__func__"), frame.f_locals["processed_args"], frame.f_locals["processed_kwargs"], record.args)
                record.finish(arg)
            elif event == "c_call" and _is_user(frame) and str(getattr(arg, "__module__", "") or "").startswith("paddle"):
                record = _Record(getattr(arg, "__name__", repr(arg)), "", f"{_short(frame.f_code.co_filename)}:{frame.f_lineno}", [])
                record.seen = False
                self.records.append(record)
        except BaseException as e:  # noqa: BLE001 (kept, raised after the pass: a profile function's error would unset it)
            self.error = self.error or e

    def _call(self, frame, caller) -> None:
        f_locals = frame.f_locals
        if isinstance(f_locals.get("self"), paddle.nn.Layer):
            return  # a layer's own call (hooks record it) or method (parameters(), train())
        func = _wrapped(f_locals) if "args" in f_locals and "kwargs" in f_locals else None
        if func is not None:  # a decorator's wrapper(*args, **kwargs)
            name = func.__name__
            args = _bind(func, f_locals["args"], f_locals.get("kwargs", {}), {})
            values = list(f_locals["args"]) + list(f_locals.get("kwargs", {}).values())
            args["__func__"] = func
        elif "args" in f_locals and set(f_locals) <= {"args", "kwargs"}:  # a generated method: _tanh(*args, **kwargs)
            name = frame.f_code.co_name.removeprefix("_")
            args = {"x": f_locals["args"][0]} if f_locals["args"] else {}
            values = list(f_locals["args"]) + list(f_locals.get("kwargs", {}).values())
        else:
            name = frame.f_code.co_name
            code = frame.f_code
            params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
            args = {k: f_locals[k] for k in params if k in f_locals}
            values = list(args.values())
        inputs = self.data(values)
        if name in _PASSTHROUGH and inputs:
            return
        if name in _SHAPE_ONLY or not inputs:
            self.open[id(frame)] = None  # its tensor, if any, is a constant
            return
        record = _Record(name, "", f"{_short(caller.f_code.co_filename)}:{caller.f_lineno}", inputs, args=args)
        self.records.append(record)
        self.open[id(frame)] = record

    def operator(self, method: str, original):
        """A recording stand-in for one of paddle.Tensor's C operators."""

        def wrapper(a, *rest):
            out = original(a, *rest)
            caller = sys._getframe(1)
            if self.depth == 0 and threading.get_ident() == self.thread and _is_user(caller):
                inputs = self.data((a, *rest))
                if not inputs:
                    self.constants[id(out)] = out
                    return out
                record = _Record(method, "", f"{_short(caller.f_code.co_filename)}:{caller.f_lineno}", inputs)
                record.finish(out)
                self.records.append(record)
            return out

        return wrapper


_GENERIC = {"__impl__", "wrapper", "decorator", "inner", "impl", "_wrapper"}


def _wrapped(f_locals: dict, depth: int = 3):
    """The function a decorator's wrapper frame calls: `func` (paddle.utils.decorator_utils) or
    the one inside `decorated`'s closure (paddle.base.wrapped_decorator: F.relu_, x.view), None
    when the frame holds none."""
    for key, value in f_locals.items():
        if key not in ("args", "kwargs", "self") and inspect.isfunction(value):
            found = _named(value, depth)
            if found is not None:
                return found
    return None


def _named(fn, depth: int):
    fn = inspect.unwrap(fn)
    if fn.__name__ not in _GENERIC:
        return fn
    cells = [c.cell_contents for c in fn.__closure__ or () if c.cell_contents is not None] if depth else []
    return next((f for f in (_named(c, depth - 1) for c in cells if inspect.isfunction(c)) if f is not None), None)


def _bind(func, args, kwargs, fallback: dict) -> dict:
    """A call's arguments by parameter name, as the (unwrapped) function names them; `fallback`
    when they do not bind (paddle's alias names)."""
    try:
        bound = inspect.signature(inspect.unwrap(func)).bind(*args, **kwargs)
    except (TypeError, ValueError):
        if fallback or not args:
            return dict(fallback)
        return {"x": args[0]}
    bound.apply_defaults()
    return dict(bound.arguments) | {"__func__": func}


def trace(model, input_shape) -> Trace:
    """The ops of one forward pass of a paddle model on a random (2, *input_shape) float64 input,
    in call order, as lenet_spec.traced defines them. The model itself is left as it was (dtype,
    mode, weights). TraceError when the model is not a paddle model, its forward fails or is not a
    chain of ops, or it returns something other than one tensor."""
    if not isinstance(model, paddle.nn.Layer):
        raise TraceError(f"not a paddle model: a {type(model).__name__} (give a paddle.nn.Layer)")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise TraceError(f"input shape {input_shape!r}: give positive ints without the batch axis, as 1,28,28")
    shape = tuple(int(s) for s in shape)
    try:
        work, restore = copy.deepcopy(model), None
    except Exception:  # a model that cannot be copied: cast and restored in place
        work, restore = model, _cast_in_place(model)
    try:
        return _trace(work, shape, type(model))
    finally:
        if restore is not None:
            restore()


def _cast_in_place(model: paddle.nn.Layer):
    """Cast `model` to float64 in evaluation mode; returns what puts back its dtype, mode and values."""
    training = [(m, m.training) for m in model.sublayers(include_self=True)]
    dtype = next((str(p.dtype).removeprefix("paddle.") for p in model.parameters() if p.is_floating_point()), "float32")
    saved = {id(t): (t, t.numpy().copy()) for t in [*model.parameters(), *model.buffers()]}

    def restore():
        model.to(dtype=dtype)
        for t, value in saved.values():
            t.set_value(value)
        for m, was in training:
            m.training = was

    return restore


def _trace(model: paddle.nn.Layer, shape: tuple[int, ...], cls: type) -> Trace:
    model.to(dtype="float64")
    model.eval()
    place = next((p.place for p in model.parameters()), None)
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, *shape)), dtype="float64", place=place)
    x_array = _array(x)  # before the pass: an in-place op (F.relu_) may change x
    recorder = _Recorder(model)
    handles = [h for m in recorder.layers for h in (m.register_forward_pre_hook(recorder.before), m.register_forward_post_hook(recorder.after))]
    originals = {name: paddle.Tensor.__dict__[name] for name in _OPERATORS if name in paddle.Tensor.__dict__}
    rng = paddle.get_rng_state()
    previous = sys.getprofile()
    try:
        for name, original in originals.items():
            setattr(paddle.Tensor, name, recorder.operator(name, original))
        sys.setprofile(recorder.profile)
        try:
            with paddle.no_grad():
                out = model(x)
        finally:
            sys.setprofile(previous)
    except Exception as e:
        said = " ".join(str(e).split())[:300]
        raise TraceError(f"{cls.__name__}'s forward raised {type(e).__name__}: {said} on a (2, {', '.join(map(str, shape))}) float64 input") from e
    finally:
        for name, original in originals.items():
            setattr(paddle.Tensor, name, original)
        for h in handles:
            h.remove()
        paddle.set_rng_state(rng)
    if recorder.error is not None:
        raise recorder.error
    if not isinstance(out, paddle.Tensor):
        raise TraceError(f"{cls.__name__}'s forward returns a {type(out).__name__}, not one tensor; parity.port follows a chain to one output")
    ops = _chain(recorder.records, x, x_array, out)
    try:
        source = inspect.getsourcefile(cls) or ""
    except TypeError:
        source = ""
    return Trace(cls.__name__, source, shape, ops, tuple(out.shape[1:]))


def _same(t, array: np.ndarray, previous: _Record | None, x, x_array: np.ndarray) -> bool:
    """Whether tensor `t` (values `array`) is the previous op's output (or the model's input)."""
    if previous is not None and not previous.seen:
        return True  # a C call's output is unseen: parity.port stops at that unsupported op anyway
    want, want_array = (x, x_array) if previous is None else (previous.output, previous.out_array)
    if want is None:
        return False
    return t is want or (array.shape == want_array.shape and np.array_equal(array, want_array))


def _is_log_softmax(x: np.ndarray, y: np.ndarray | None) -> bool:
    """Whether `y` is log_softmax of `x` (N, F) over the features, in float64 (the wrapper hides logsumexp's axis)."""
    if y is None or x.ndim != 2 or y.shape != x.shape:
        return False
    m = x.max(axis=1, keepdims=True)
    want = x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))
    return bool(np.abs(want - y).max() <= 1e-12 * max(1.0, float(np.abs(want).max())))


def _log_softmax_from_primitives(records: list[_Record]) -> list[_Record]:
    """`x - paddle.logsumexp(x, axis=1, keepdim=True)` as one log_softmax: how log_softmax is
    written in paddle where F.log_softmax would clip at -64 (lenet_paddle/codegen.py writes it so)."""
    out, i = [], 0
    while i < len(records):
        r = records[i]
        nxt = records[i + 1] if i + 1 < len(records) else None
        if (
            r.name == "logsumexp"
            and nxt is not None
            and nxt.name == "__sub__"
            and len(nxt.inputs) == 2
            and nxt.inputs[0] is r.inputs[0]
            and nxt.inputs[1] is r.output
            and _is_log_softmax(r.in_arrays[0], nxt.out_array)
        ):
            merged = _Record("log_softmax", "", r.where, [r.inputs[0]], args={"axis": 1})
            merged.output, merged.out_array = nxt.output, nxt.out_array
            out.append(merged)
            i += 2
            continue
        out.append(r)
        i += 1
    return out


def _chain(records: list[_Record], x, x_array: np.ndarray, out) -> list[Op]:
    """The records as ops, checked to be a chain from `x` to `out`."""
    ops, previous = [], None
    records = _log_softmax_from_primitives(records)
    for record in records:
        what = record.name if not record.module else f"{record.module} ({record.name})"
        where = f" at {record.where}" if record.where else ""
        for t, array in zip(record.inputs, record.in_arrays):
            if not _same(t, array, previous, x, x_array):
                source = "the model's input" if previous is None else f"the output of {ops[-1].describe()}"
                raise TraceError(
                    f"forward is not a chain of layers: {what}{where} takes a tensor that is not {source} "
                    "(a branch, a merge such as a residual add, or a tensor made elsewhere); parity.port follows chains only"
                )
        ops.append(_op(record))
        previous = record
    if previous is not None and previous.seen and not _same(out, _array(out), previous, x, x_array):
        last = ops[-1].describe()
        raise TraceError(f"forward is not a chain of layers: the model returns a tensor that is not the output of {last}; parity.port follows chains only")
    if previous is None and out is not x and not np.array_equal(_array(out), x_array):
        raise TraceError("the forward pass made no op the importer sees, yet returns a tensor that is not its input")
    return ops


def _op(record: _Record) -> Op:
    """One record as an Op: its kind, attributes and parameters, or `unsupported` and why."""
    op = Op("unsupported", record.module, record.name, where=record.where)
    if record.inputs:
        op.in_shape = tuple(record.inputs[0].shape[1:])
    if record.output is not None:
        op.out_shape = tuple(record.output.shape[1:])
    if not record.seen:
        why = "a C function of paddle's called directly, its tensors unseen by the importer; call paddle's layers or its Python API"
        op.attrs = {"reason": f"{record.name}: {why}"}
        return op
    if record.odd_output:
        op.attrs = {"reason": f"{record.name} returns a {record.odd_output}, not one tensor; {_NOT_IN_SPEC}"}
        return op
    kind, attrs, params, reason = _layer(record) if record.layer is not None else _function(record)
    if reason:
        op.attrs = {"reason": reason}
    else:
        op.kind, op.attrs, op.params = kind, attrs, params
    return op


def _flat(record: _Record) -> bool:
    """Whether the op took (N, ...) to (N, prod(...)): the spec's flatten."""
    if record.output is None or not record.inputs:
        return False
    a, b = tuple(record.inputs[0].shape), tuple(record.output.shape)
    return len(b) == 2 and b[0] == a[0] and b[1] == math.prod(a[1:])


def _dim(axis, record: _Record, name: str):
    """(softmax's dim, why not): the spec's (log_)softmax is over the features of (N, F)."""
    if len(record.inputs[0].shape) != 2 or axis not in (1, -1):
        return None, f"{name} over axis {axis} of a {len(record.inputs[0].shape)}-D tensor; the spec's {name} is over dim 1 of (N, F)"
    return int(axis), ""


def _layer(record: _Record) -> tuple[str, dict, dict, str]:
    """(kind, attrs, params, "") of one of paddle's layers or a user's own, or ("", {}, {}, why)."""
    m, cls = record.layer, type(record.layer).__name__
    nn = paddle.nn
    if not _paddles_layer(type(m)):
        return _own_layer(record)
    if type(m) in (nn.Conv2D,):
        return _conv(m)
    if type(m) is nn.Linear:
        w = _array(m.weight)
        params = {"weight": w.T.copy()} | ({"bias": _array(m.bias)} if m.bias is not None else {})
        return "linear", {"in_features": int(w.shape[0]), "out_features": int(w.shape[1]), "bias": m.bias is not None}, params, ""
    if type(m) in (nn.MaxPool2D, nn.AvgPool2D):
        avg = type(m) is nn.AvgPool2D
        mask, exclusive, divisor = getattr(m, "return_mask", False), getattr(m, "exclusive", True), getattr(m, "divisor", None)
        return _pool(avg, m.ksize, m.stride, m.padding, m.ceil_mode, m.data_format, mask, exclusive, divisor, cls)
    if type(m) in (nn.AdaptiveAvgPool2D, nn.AdaptiveMaxPool2D):
        if getattr(m, "_return_mask", False) or getattr(m, "_data_format", "NCHW") != "NCHW":
            return "", {}, {}, f"{cls} with return_mask or a data format other than NCHW {_NOT_IN_SPEC}"
        return _adaptive("adaptive_avg_pool" if type(m) is nn.AdaptiveAvgPool2D else "adaptive_max_pool", m._output_size, cls)
    if type(m) in (nn.BatchNorm2D, nn.BatchNorm1D, nn.BatchNorm):
        return _batchnorm(m, cls)
    if type(m) is nn.Dropout:
        return _dropout(m.p, m.axis, m.mode, cls)
    if type(m) is nn.Flatten:
        if not _flat(record):
            return "", {}, {}, f"Flatten(start_axis={m.start_axis}, stop_axis={m.stop_axis}) does not take (N, ...) to (N, prod); the spec's flatten does"
        return "flatten", {}, {}, ""
    if cls in _ACTIVATIONS and type(m) is getattr(nn, cls):
        return _ACTIVATIONS[cls], {}, {}, ""
    if type(m) is nn.LeakyReLU:
        return "leaky_relu", {"slope": float(m._negative_slope)}, {}, ""
    if type(m) in (nn.Softmax, nn.LogSoftmax):
        dim, why = _dim(m._axis, record, cls)
        return ("softmax" if type(m) is nn.Softmax else "log_softmax"), {"dim": dim}, {}, why
    return "", {}, {}, f"paddle's {cls} {_NOT_IN_SPEC}"


def _conv(m) -> tuple[str, dict, dict, str]:
    """A Conv2D's attrs and params, or why it is unsupported."""
    if isinstance(m._padding, str):
        return "", {}, {}, f"Conv2D with padding={m._padding!r} {_NOT_IN_SPEC}: give the padding as ints"
    if m._groups != 1:
        return "", {}, {}, f"Conv2D with groups={m._groups} {_NOT_IN_SPEC} (groups 1 only)"
    if m._padding_mode != "zeros":
        return "", {}, {}, f"Conv2D with padding_mode={m._padding_mode!r} {_NOT_IN_SPEC} (zeros only)"
    if m._data_format != "NCHW":
        return "", {}, {}, f"Conv2D with data_format={m._data_format!r} {_NOT_IN_SPEC} (NCHW only)"
    padding = m._updated_padding
    if isinstance(padding, (list, tuple)) and len(padding) == 4:
        if padding[0] != padding[1] or padding[2] != padding[3]:
            return "", {}, {}, f"Conv2D's padding {tuple(padding)} is not symmetric; the spec's padding is one int"
        padding = [padding[0], padding[2]]
    attrs = {"in_channels": int(m._in_channels), "out_channels": int(m._out_channels)}
    for key, value in (("kernel", m._kernel_size), ("stride", m._stride), ("padding", padding), ("dilation", m._dilation)):
        attrs[key], why = _square(value, f"Conv2D's {key}")
        if why:
            return "", {}, {}, why
    attrs |= {"groups": 1, "bias": m.bias is not None}
    params = {"weight": _array(m.weight)} | ({"bias": _array(m.bias)} if m.bias is not None else {})
    return "conv", attrs, params, ""


def _pool(avg, kernel, stride, padding, ceil_mode, data_format, return_mask, exclusive, divisor, name) -> tuple[str, dict, dict, str]:
    """A max or average pool's attrs (a layer's or F.max_pool2d's / F.avg_pool2d's), or why not."""
    if isinstance(padding, str):
        return "", {}, {}, f"{name} with padding={padding!r} {_NOT_IN_SPEC}: give the padding as ints"
    if return_mask or data_format != "NCHW" or divisor is not None:
        return "", {}, {}, f"{name} with return_mask, divisor_override or a data format other than NCHW {_NOT_IN_SPEC}"
    attrs = {}
    for key, value in (("kernel", kernel), ("stride", kernel if stride is None else stride), ("padding", padding)):
        attrs[key], why = _square(value, f"{name}'s {key}")
        if why:
            return "", {}, {}, why
    attrs["ceil_mode"] = bool(ceil_mode)
    if avg:
        attrs["count_include_pad"] = not exclusive  # paddle's exclusive=True leaves the padding out of the mean
    return ("avg_pool" if avg else "max_pool"), attrs, {}, ""


def _adaptive(kind: str, size, name: str) -> tuple[str, dict, dict, str]:
    size = (size, size) if isinstance(size, int) else tuple(size)
    if len(size) != 2 or not all(isinstance(s, int) for s in size):
        return "", {}, {}, f"{name} with output size {size} {_NOT_IN_SPEC} (two ints)"
    return kind, {"output_size": (int(size[0]), int(size[1]))}, {}, ""


def _batchnorm(m, cls: str) -> tuple[str, dict, dict, str]:
    """A BatchNorm's attrs and params: momentum in torch's sense (1 - paddle's), or why not."""
    if getattr(m, "_use_global_stats", None) or getattr(m, "_act", None):
        return "", {}, {}, f"{cls} with use_global_stats or a fused activation {_NOT_IN_SPEC}"
    layout = getattr(m, "_data_format", getattr(m, "_data_layout", "NCHW"))
    if layout not in ("NCHW", "NC", "NCL"):
        return "", {}, {}, f"{cls} with data format {layout!r} {_NOT_IN_SPEC} (channels first)"
    affine = m.weight is not None
    # paddle's momentum weighs the running average, torch's the batch: 1 - 0.9, rounded to 12 digits, is 0.1
    momentum = float(f"{1.0 - m._momentum:.12g}")
    attrs = {"features": int(m._mean.shape[0]), "eps": float(m._epsilon), "momentum": momentum, "affine": affine, "track_running_stats": True}
    params = {"running_mean": _array(m._mean), "running_var": _array(m._variance)}
    if affine:
        params = {"weight": _array(m.weight), "bias": _array(m.bias)} | params
    return "batchnorm", attrs, params, ""


def _dropout(p, axis, mode, name: str) -> tuple[str, dict, dict, str]:
    """A dropout's attrs, or why not: the spec's drops whole inputs, scaled by 1/(1-p) in training."""
    if mode != "upscale_in_train":
        return "", {}, {}, f"{name} in mode {mode!r} scales at inference; the spec's dropout is upscale_in_train (paddle's default)"
    if axis is not None:
        return "", {}, {}, f"{name} along axis {axis} {_NOT_IN_SPEC} (whole inputs only)"
    return "dropout", {"p": float(p)}, {}, ""


def _own_layer(record: _Record) -> tuple[str, dict, dict, str]:
    """A user's own layer owning parameters: LeNet-5's trainable subsampling when its input and
    output say so (lenet_spec.traced.recognise_subsample), else unsupported."""
    m, cls = record.layer, type(record.layer).__name__
    hand = f"{cls} (a layer of your own, owning parameters) {_NOT_IN_SPEC}: port it by hand and check it with parity.diff"
    own = dict(m.named_parameters(include_sublayers=False))
    weight, bias = own.get("weight"), own.get("bias")
    if (weight is None or bias is None) and len(own) == 2:
        weight, bias = own.values()
    pools = [s for s in m.sublayers() if type(s) is paddle.nn.AvgPool2D]
    if weight is None or bias is None or len(own) != 2 or len(pools) != 1 or len(record.inputs) != 1 or record.out_array is None:
        return "", {}, {}, hand
    pool = pools[0]
    kernel, why = _square(pool.ksize, "kernel")
    stride, _ = _square(pool.ksize if pool.stride is None else pool.stride, "stride")
    if why or stride != kernel or record.in_arrays[0].ndim != 4:
        return "", {}, {}, hand
    w, b = _array(weight), _array(bias)
    pooling = recognise_subsample(record.in_arrays[0], record.out_array, w, b, kernel)
    if pooling is None:
        return "", {}, {}, hand
    pool_attr = next((n for n, s in m.named_children() if s is pool), "pool")
    return "subsample", {"channels": int(w.shape[0]), "kernel": kernel, "pooling": pooling, "pool_attr": pool_attr}, {"weight": w, "bias": b}, ""


def _function(record: _Record) -> tuple[str, dict, dict, str]:
    """A functional op's kind and attrs (F.relu, paddle.flatten, x.reshape...), or why not."""
    name, a = record.name, record.args
    if name in _FUNCTIONS:
        return _FUNCTIONS[name], {}, {}, ""
    if name == "leaky_relu":
        return "leaky_relu", {"slope": float(a.get("negative_slope", 0.01))}, {}, ""
    if name in ("softmax", "log_softmax"):
        if a.get("dtype") is not None:
            return "", {}, {}, f"{name} with dtype={a['dtype']!r} {_NOT_IN_SPEC}"
        dim, why = _dim(a.get("axis", -1), record, name)
        return name, {"dim": dim}, {}, why
    if name in ("max_pool2d", "avg_pool2d") and "kernel_size" in a:
        avg = name == "avg_pool2d"
        return _pool(avg, a["kernel_size"], a.get("stride"), a.get("padding", 0), a.get("ceil_mode", False), a.get("data_format", "NCHW"),
                     a.get("return_mask", False), a.get("exclusive", True), a.get("divisor_override"), name)  # fmt: skip
    if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d") and "output_size" in a:
        if a.get("return_mask") or a.get("data_format", "NCHW") != "NCHW":
            return "", {}, {}, f"{name} with return_mask or a data format other than NCHW {_NOT_IN_SPEC}"
        return _adaptive(name.removesuffix("2d"), a["output_size"], name)
    if name in ("flatten", "reshape", "view", "reshape_", "flatten_"):
        if _flat(record):
            return "flatten", {}, {}, ""
        shape = tuple(record.output.shape) if record.output is not None else "?"
        return "", {}, {}, f"{name} from {tuple(record.inputs[0].shape)} to {shape} is not a flatten of (N, ...) to (N, prod); {_NOT_IN_SPEC}"
    if name == "dropout" and "p" in a:
        if record.out_array is not None and not np.array_equal(record.in_arrays[0], record.out_array):  # the pass runs in eval mode
            return "", {}, {}, "dropout with training=True (F.dropout's default) drops in evaluation mode too; pass training=self.training"
        return _dropout(a["p"], a.get("axis"), a.get("mode", "upscale_in_train"), name)
    if name in ("linear", "conv2d", "batch_norm"):
        return "", {}, {}, f"the functional {name} {_NOT_IN_SPEC}: the spec's is a layer owning its parameters (nn.Linear, nn.Conv2D, nn.BatchNorm2D)"
    if name in _OPERATORS:
        return "", {}, {}, f"the operator {_OPERATORS[name]} ({name}) on a tensor {_NOT_IN_SPEC}"
    return "", {}, {}, f"{name} {_NOT_IN_SPEC}"
