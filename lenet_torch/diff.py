"""A user's torch model seen through NumPy, for parity.diff: its units, one forward (and backward)
pass recorded unit by unit with forward hooks, a unit run alone, its state in and out, its
dtype, and the optimizers of --train. Dropout units take masks drawn in NumPy.

Mirrors lenet_paddle/diff.py; parity.diff uses only these functions.
"""

from __future__ import annotations

import inspect
import os
import sys
from contextlib import nullcontext

import numpy as np
import torch

from lenet_spec.layers import Dropout as SpecDropout
from lenet_spec.probe import CHANNEL_DROPOUT, DROPOUT, Call, Run, Unit

_DROPOUTS = {torch.nn.Dropout: DROPOUT, torch.nn.Dropout1d: CHANNEL_DROPOUT, torch.nn.Dropout2d: CHANNEL_DROPOUT, torch.nn.Dropout3d: CHANNEL_DROPOUT}
_IGNORED_BUFFERS = {"num_batches_tracked"}  # BatchNorm's step counter: used only with momentum=None
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OWN = tuple(
    os.path.join(d, "") for d in (os.path.dirname(torch.__file__), *(os.path.join(_ROOT, p) for p in ("lenet_torch", "parity", "lenet_spec")))
)  # not the user's code


def is_model(obj) -> bool:
    """Whether `obj` is a torch model."""
    return isinstance(obj, torch.nn.Module)


def defined_at(cls: type) -> str:
    """FILE:LINE of a class's definition ("" when Python cannot tell)."""
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return ""


def _users(cls: type) -> str:
    """FILE:LINE of a class of the user's (not torch's own), else ""."""
    at = defined_at(cls)
    return at if at and not at.startswith(_OWN) else ""


def units(model: torch.nn.Module) -> tuple[list[Unit], list[torch.nn.Module]]:
    """The model's units (leaves, and modules owning parameters or buffers directly), in
    definition order, and the modules themselves."""
    found, modules = [], []
    model_at = defined_at(type(model))
    for name, m in model.named_modules():
        params = [(n, tuple(p.shape)) for n, p in m.named_parameters(recurse=False)]
        buffers = [(n, tuple(b.shape)) for n, b in m.named_buffers(recurse=False) if n not in _IGNORED_BUFFERS]
        if next(m.children(), None) is not None and not params and not buffers:
            continue
        kind = _DROPOUTS.get(type(m), "") or (DROPOUT if isinstance(getattr(m, "spec", None), SpecDropout) else "")  # this project's own Dropout too
        unit = Unit(
            name,
            type(m).__name__,
            params,
            buffers,
            kind,
            float(getattr(m, "p", getattr(getattr(m, "spec", None), "p", 0.0))) if kind else 0.0,
            "upscale_in_train" if kind else "",
            _users(type(m)) or model_at,
        )
        if isinstance(getattr(m, "eps", None), float):
            unit.eps = m.eps
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
            unit.momentum = float(m.momentum)
        found.append(unit)
        modules.append(m)
    return found, modules


def harmonise(module: torch.nn.Module, eps: float | None = None, momentum: float | None = None) -> tuple[float | None, float | None]:
    """Set a normalisation's epsilon and momentum (None: leave it); returns the old values."""
    old = (getattr(module, "eps", None), getattr(module, "momentum", None))
    if eps is not None:
        module.eps = eps
    if momentum is not None:
        module.momentum = momentum
    return old


def tensor(array: np.ndarray, dtype: str | None = None) -> torch.Tensor:
    """A NumPy array as a torch tensor on the CPU, in `dtype` ('float32', 'float64') when given."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.to(getattr(torch, dtype)) if dtype else t


def set_mode(model: torch.nn.Module, train: bool) -> None:
    """Training mode or evaluation mode."""
    model.train(train)


def _dropped(x: torch.Tensor, mask: np.ndarray, spec: Unit) -> torch.Tensor:
    """A dropout's output keeping `mask`'s units, scaled by the unit's own rule (torch's: upscale_in_train)."""
    scale = 1.0 / (1.0 - spec.p) if spec.convention == "upscale_in_train" else 1.0
    return x * tensor(mask).to(x.dtype) * scale


def dtype_of(model: torch.nn.Module) -> str:
    """'float32' or 'float64': the dtype of the model's first floating parameter."""
    return next((str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()), "float32")


def cast(model: torch.nn.Module, dtype: str) -> None:
    """Every floating parameter and buffer of `model` to `dtype`."""
    model.to(getattr(torch, dtype))


def state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Full name -> a copy of every parameter and buffer (the counters left out)."""
    out = {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}
    out.update({n: b.detach().cpu().numpy().copy() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] not in _IGNORED_BUFFERS})
    return out


def trainable(model: torch.nn.Module) -> list[str]:
    """The full names of the parameters an optimizer moves."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def load_state(model: torch.nn.Module, values: dict[str, np.ndarray]) -> None:
    """Copy `values` (full name -> array) into the model's tensors, in each tensor's own dtype."""
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    with torch.no_grad():
        for name, value in values.items():
            t = tensors[name]
            t.copy_(tensor(value).to(t.dtype))


def seed(value: int):
    """Seed torch's own generator (what a dropout without a mask draws from); returns its state
    before, for `restore`."""
    state = torch.get_rng_state()
    torch.manual_seed(value)
    return state


def restore(state) -> None:
    """torch's generator as `seed` found it: the user's program draws on as if nothing ran."""
    torch.set_rng_state(state)


def _user_line() -> str:
    """FILE:LINE of the innermost frame of the user's code inside this probe's `run`: where the
    model's code calls the unit ("" when none does: a torch container's own forward)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code is not run.__code__:
        if not frame.f_code.co_filename.startswith(_OWN) and not frame.f_code.co_filename.startswith("<"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def _tensors(args) -> list[torch.Tensor]:
    return [a for a in args if isinstance(a, torch.Tensor)]


def run(
    model: torch.nn.Module,
    modules: list[torch.nn.Module],
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
            calls[-1].inputs = [t.detach().cpu().numpy().copy() for t in _tensors(args)]
        open_calls.append(len(calls) - 1)

    def after(m, args, out):
        i = open_calls.pop()
        call, spec = calls[i], specs[calls[i].unit]
        if train and spec.kind and i in masks:  # the same units dropped as on the other side
            out = _dropped(args[0], masks[i], spec)
        if isinstance(out, torch.Tensor):
            call.out_shape = tuple(out.shape)
            if keep:
                call.output = out.detach().cpu().numpy().copy()
            if backward and out.requires_grad:
                out.register_hook(lambda g, call=call: setattr(call, "grad", g.detach().cpu().numpy().copy()))
        else:
            call.out_shape = ()
        return out

    handles = [h for m in modules for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    result = Run(calls)
    try:
        dtype = dtype_of(model)
        with nullcontext() if backward else torch.no_grad():
            try:
                out = model(tensor(x, dtype))
            except Exception as e:  # the user's model: any error is a finding, reported with the unit that raised
                result.raised = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
                result.raised_call = open_calls[-1] if open_calls else None
                return result
            if not isinstance(out, torch.Tensor):
                result.odd_output = type(out).__name__
                return result
            result.output = out.detach().cpu().numpy().copy()
            if backward:
                model.zero_grad(set_to_none=True)
                if projection is None:
                    loss = cross_entropy(out, labels)
                else:
                    loss = (out * tensor(projection, dtype)).sum() / out.shape[0]
                loss.backward()
                result.loss = float(loss.detach())
                result.grads = {n: p.grad.detach().cpu().numpy().copy() for n, p in model.named_parameters() if p.grad is not None}
    finally:
        for h in handles:
            h.remove()
    return result


def cross_entropy(out: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """The mean cross-entropy from the primitives (max, exp, sum, log), as lenet_paddle/diff.py
    writes it: paddle's own cross_entropy and log_softmax clip a log-probability below about -64
    (measured: a loss of 231 comes back as 64), so neither framework's fused loss is used."""
    top = out.max(dim=1, keepdim=True).values.detach()
    log_sum = top.squeeze(1) + torch.log(torch.exp(out - top).sum(dim=1))
    picked = out.gather(1, tensor(labels.astype(np.int64))[:, None]).squeeze(1)
    return (log_sum - picked).mean()


def run_unit(module: torch.nn.Module, spec: Unit, inputs: list[np.ndarray], train: bool, mask: np.ndarray | None = None) -> np.ndarray:
    """One unit alone on `inputs` (arrays in the module's dtype), in the given mode, without
    gradients; a dropout applies `mask`."""
    was = module.training
    set_mode(module, train)
    try:
        with torch.no_grad():
            args = [tensor(a) for a in inputs]
            if train and spec.kind and mask is not None:
                return _dropped(args[0], mask, spec).numpy()
            return module(*args).detach().cpu().numpy()
    finally:
        set_mode(module, was)


def optimizer(model: torch.nn.Module, name: str, lr: float, momentum: float = 0.9):
    """torch's own optimizer for `name` ('sgd', 'momentum', 'adam': betas 0.9/0.999, eps 1e-8)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def step(opt) -> None:
    """Apply the optimizer to the gradients `run(..., backward=True)` left."""
    opt.step()
    opt.zero_grad(set_to_none=True)
