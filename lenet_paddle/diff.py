"""A user's paddle model seen through NumPy, for parity.diff: its units, one forward (and backward)
pass recorded unit by unit with forward hooks, a unit run alone, its state in and out, its
dtype, and the optimizers of --train. Dropout units take masks drawn in NumPy.

Mirrors lenet_torch/diff.py; parity.diff uses only these functions.
"""

from __future__ import annotations

import inspect
import os
import sys
import warnings
from contextlib import nullcontext

import numpy as np
import paddle

from lenet_spec.layers import Dropout as SpecDropout
from lenet_spec.probe import CHANNEL_DROPOUT, DROPOUT, Call, Run, Unit

_DROPOUTS = {paddle.nn.Dropout: DROPOUT, paddle.nn.Dropout2D: CHANNEL_DROPOUT, paddle.nn.Dropout3D: CHANNEL_DROPOUT}
_IGNORED_BUFFERS = {"num_batches_tracked"}  # a port of torch's BatchNorm counter: used only with momentum=None
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN = tuple(
    os.path.join(d, "") for d in (os.path.dirname(paddle.__file__), *(os.path.join(_ROOT, p) for p in ("lenet_paddle", "parity", "lenet_spec")))
)  # not the user's code


def is_model(obj) -> bool:
    """Whether `obj` is a paddle model."""
    return isinstance(obj, paddle.nn.Layer)


def defined_at(cls: type) -> str:
    """FILE:LINE of a class's definition ("" when Python cannot tell)."""
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return ""


def _users(cls: type) -> str:
    """FILE:LINE of a class of the user's (not paddle's own), else ""."""
    at = defined_at(cls)
    return at if at and not at.startswith(_OWN) else ""


def units(model: paddle.nn.Layer) -> tuple[list[Unit], list[paddle.nn.Layer]]:
    """The model's units (leaves, and layers owning parameters or buffers directly), in
    definition order, and the layers themselves. Paddle keeps running statistics as parameters
    that are not trained (stop_gradient): those are the buffers here."""
    found, modules = [], []
    model_at = defined_at(type(model))
    for name, m in model.named_sublayers(include_self=True):
        own = list(m.named_parameters(include_sublayers=False))
        params = [(n, tuple(p.shape)) for n, p in own if not p.stop_gradient]
        buffers = [(n, tuple(p.shape)) for n, p in own if p.stop_gradient]
        buffers += [(n, tuple(b.shape)) for n, b in m.named_buffers(include_sublayers=False) if n not in _IGNORED_BUFFERS]
        if next(iter(m.children()), None) is not None and not params and not buffers:
            continue
        kind = _DROPOUTS.get(type(m), "") or (DROPOUT if isinstance(getattr(m, "spec", None), SpecDropout) else "")  # this project's own Dropout too
        unit = Unit(
            name,
            type(m).__name__,
            params,
            buffers,
            kind,
            float(getattr(m, "p", getattr(getattr(m, "spec", None), "p", 0.0))) if kind else 0.0,
            getattr(m, "mode", "upscale_in_train") if kind else "",
            _users(type(m)) or model_at,
        )
        if kind == DROPOUT and getattr(m, "axis", None) is not None:
            unit.unsupported = f"Dropout(axis={m.axis}) drops along an axis; parity.diff shares masks of whole inputs only"
        if isinstance(getattr(m, "_epsilon", None), float):
            unit.eps = m._epsilon
        if isinstance(getattr(m, "_momentum", None), float) and "_mean" in dict(buffers):
            unit.momentum = 1.0 - m._momentum  # paddle's momentum weighs the running average: torch's is the batch's weight
        found.append(unit)
        modules.append(m)
    return found, modules


def tensor(array: np.ndarray, dtype: str | None = None) -> paddle.Tensor:
    """A NumPy array as a paddle tensor on the CPU, in `dtype` ('float32', 'float64') when given."""
    return paddle.to_tensor(np.ascontiguousarray(array), dtype=dtype, place="cpu")


def set_mode(model: paddle.nn.Layer, train: bool) -> None:
    """Training mode or evaluation mode."""
    model.train() if train else model.eval()


def _dropped(x: paddle.Tensor, mask: np.ndarray, spec: Unit) -> paddle.Tensor:
    """A dropout's output keeping `mask`'s units, scaled by the unit's own rule (its mode)."""
    scale = 1.0 / (1.0 - spec.p) if spec.convention == "upscale_in_train" else 1.0
    return x * tensor(mask, str(x.dtype).removeprefix("paddle.")) * scale


def dtype_of(model: paddle.nn.Layer) -> str:
    """'float32' or 'float64': the dtype of the model's first floating parameter."""
    return next((str(p.dtype).removeprefix("paddle.") for p in model.parameters() if p.is_floating_point()), "float32")


def cast(model: paddle.nn.Layer, dtype: str) -> None:
    """Every floating parameter and buffer of `model` to `dtype`."""
    model.to(dtype=dtype)


def state(model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    """Full name -> a copy of every parameter and buffer."""
    return {n: t.numpy().copy() for n, t in _tensors_of(model).items() if n.rsplit(".", 1)[-1] not in _IGNORED_BUFFERS}


def _tensors_of(model: paddle.nn.Layer) -> dict[str, paddle.Tensor]:
    """Every parameter and buffer by full name (non-persistable buffers too, which state_dict leaves out)."""
    return dict(model.named_parameters()) | dict(model.named_buffers())


def trainable(model: paddle.nn.Layer) -> list[str]:
    """The full names of the parameters an optimizer moves."""
    return [n for n, p in model.named_parameters() if not p.stop_gradient]


def load_state(model: paddle.nn.Layer, values: dict[str, np.ndarray]) -> None:
    """Copy `values` (full name -> array) into the model's tensors, in each tensor's own dtype."""
    tensors = _tensors_of(model)
    for name, value in values.items():
        t = tensors[name]
        t.set_value(np.ascontiguousarray(value, dtype=str(t.dtype).removeprefix("paddle.")))


def seed(value: int):
    """Seed paddle's own generator (what a dropout without a mask draws from); returns its state
    before, for `restore`."""
    state = paddle.get_rng_state()
    paddle.seed(value)
    return state


def restore(state) -> None:
    """paddle's generator as `seed` found it: the user's program draws on as if nothing ran."""
    paddle.set_rng_state(state)


def _user_line() -> str:
    """FILE:LINE of the innermost frame of the user's code inside this probe's `run`: where the
    model's code calls the unit ("" when none does: a paddle container's own forward)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code is not run.__code__:
        if not frame.f_code.co_filename.startswith(_OWN) and not frame.f_code.co_filename.startswith("<"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def _tensors(args) -> list[paddle.Tensor]:
    return [a for a in args if isinstance(a, paddle.Tensor)]


def run(
    model: paddle.nn.Layer,
    modules: list[paddle.nn.Layer],
    specs: list[Unit],
    x: np.ndarray,
    *,
    train: bool,
    keep: bool = False,
    keep_inputs: bool = True,
    masks: dict[int, np.ndarray] | None = None,
    labels: np.ndarray | None = None,
    projection: np.ndarray | None = None,
    backward: bool = False,
) -> Run:
    """One forward pass on `x`, recorded unit by unit.

    Args:
        modules, specs: what `units` returned.
        train: training mode (BatchNorm on batch statistics, dropout on) or evaluation mode.
        keep: keep every call's inputs and output (else only their shapes); keep_inputs=False keeps
            the outputs alone.
        masks: call index -> the mask a dropout call applies (training mode).
        labels, projection: the loss, when `backward`: the mean cross-entropy with `labels`, or
            the sum of output * `projection` over the batch; its gradients are recorded.
    """
    set_mode(model, train)
    masks = masks or {}
    calls: list[Call] = []
    open_calls: list[int] = []
    index = {id(m): i for i, m in enumerate(modules)}

    def before(m, args):
        calls.append(Call(index[id(m)], [tuple(t.shape) for t in _tensors(args)], at=_user_line()))
        if keep and keep_inputs:
            calls[-1].inputs = [t.detach().numpy().copy() for t in _tensors(args)]
        open_calls.append(len(calls) - 1)

    def after(m, args, out):
        i = open_calls.pop()
        call, spec = calls[i], specs[calls[i].unit]
        if train and spec.kind and i in masks:  # the same units dropped as on the other side, scaled by the layer's own mode
            out = _dropped(args[0], masks[i], spec)
        if isinstance(out, paddle.Tensor):
            call.out_shape = tuple(out.shape)
            if keep:
                call.output = out.detach().numpy().copy()
            if backward and not out.stop_gradient:
                out.register_hook(lambda g, call=call: setattr(call, "grad", g.detach().numpy().copy()))
        else:
            call.out_shape = ()
        return out

    warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")  # paddle's BatchNorm, every training call
    handles = [h for m in modules for h in (m.register_forward_pre_hook(before), m.register_forward_post_hook(after))]
    result = Run(calls)
    try:
        dtype = dtype_of(model)
        with nullcontext() if backward else paddle.no_grad():
            try:
                out = model(tensor(x, dtype))
            except Exception as e:  # the user's model: any error is a finding, reported with the unit that raised
                result.raised = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                result.raised_call = open_calls[-1] if open_calls else None
                return result
            if not isinstance(out, paddle.Tensor):
                result.odd_output = type(out).__name__
                return result
            result.output = out.detach().numpy().copy()
            if backward:
                model.clear_gradients()
                if projection is None:
                    loss = cross_entropy(out, labels)
                else:
                    loss = (out * tensor(projection, dtype)).sum() / out.shape[0]
                loss.backward()
                result.loss = float(loss.detach())
                result.grads = {n: p.grad.numpy().copy() for n, p in model.named_parameters() if p.grad is not None}
    finally:
        for h in handles:
            h.remove()
    return result


def cross_entropy(out: paddle.Tensor, labels: np.ndarray) -> paddle.Tensor:
    """The mean cross-entropy from the primitives (max, exp, sum, log), as lenet_torch/diff.py
    writes it: paddle's own cross_entropy and log_softmax clip a log-probability below about -64
    (measured: a loss of 231 comes back as 64), so neither framework's fused loss is used."""
    top = out.max(axis=1, keepdim=True).detach()
    log_sum = top.squeeze(1) + paddle.log(paddle.exp(out - top).sum(axis=1))
    picked = paddle.take_along_axis(out, tensor(labels.astype(np.int64))[:, None], axis=1).squeeze(1)
    return (log_sum - picked).mean()


def run_unit(module: paddle.nn.Layer, spec: Unit, inputs: list[np.ndarray], train: bool, mask: np.ndarray | None = None) -> np.ndarray:
    """One unit alone on `inputs` (arrays in the layer's dtype), in the given mode, without
    gradients; a dropout applies `mask`, scaled by its own mode."""
    was = module.training
    set_mode(module, train)
    try:
        with paddle.no_grad():
            args = [tensor(a) for a in inputs]
            if train and spec.kind and mask is not None:
                return _dropped(args[0], mask, spec).numpy()
            return module(*args).detach().numpy()
    finally:
        set_mode(module, was)


def optimizer(model: paddle.nn.Layer, name: str, lr: float, momentum: float = 0.9):
    """paddle's own optimizer for `name` ('sgd', 'momentum', 'adam': beta1 0.9, beta2 0.999,
    epsilon 1e-8), the same rules as torch's."""
    params = [p for p in model.parameters() if not p.stop_gradient]
    if name == "sgd":
        return paddle.optimizer.SGD(learning_rate=lr, parameters=params)
    if name == "momentum":
        return paddle.optimizer.Momentum(learning_rate=lr, momentum=momentum, parameters=params)
    return paddle.optimizer.Adam(learning_rate=lr, beta1=0.9, beta2=0.999, epsilon=1e-8, parameters=params)


def step(opt) -> None:
    """Apply the optimizer to the gradients `run(..., backward=True)` left."""
    opt.step()
    opt.clear_grad()
