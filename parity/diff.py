"""python -m parity.diff: prove that your own hand-ported torch / paddle pair computes the same thing,
or learn where it does not: the first layer, the phase and the cause, with the fix when the cause
is a known convention.

  python -m parity.diff my_torch.py:Net my_paddle.py:Net --input 1,28,28
  python -m parity.diff pkg.models:lenet pkg_paddle.models:lenet --data mnist --weights trained.pt --train 20

TORCH and PADDLE are FILE.py:NAME or module.path:NAME, where NAME is a class or a function that
takes no arguments and returns the model. A model whose constructor needs arguments takes a
two-line factory in a file of your own:
  from my_torch import Net
  def net(): return Net(num_classes=10)
and then `python -m parity.diff factory.py:net ...`.

The source's weights (--from, default torch: --weights or its own initialisation) are copied
into the other model, every weight of it (it is initialised otherwise first), and the copy must
go back bit-exactly. The correspondence is found from one forward pass of each: the modules
called, in call order, paired by type and shape (names only break ties); it is printed, and
--write-mapping writes it to a file you can edit and give back with --mapping.

Compared, in this order: (1) forward in evaluation mode, every paired layer's output; (2)
forward in training mode, both sides' dropout layers taking the same masks (drawn in NumPy),
BatchNorm on batch statistics; (3) backward: the gradient of the mean cross-entropy (or of a
fixed random projection when the output is not (N, classes)) for every parameter and each
layer's output; (4) with --train N: N optimizer steps on the same batches, after each the loss,
every parameter and every buffer, then the evaluation-mode output. Float64 is the proof, against
the project's measured tolerances; float32 is judged against the rounding measured in the same
run (docs/PORTING.md, "Checking your own port").

Exit status: 0 equal in every phase; 1 a difference, or a structure without a complete
correspondence; 2 cannot compare (a file, a name, an import, a constructor or the weights).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lenet_spec.checkpoint import CheckpointError
from lenet_spec.cli import ArgumentParser, UsageError, add_json_option, check_output, report_to_stderr, run
from lenet_spec.compare import GRAD_TOL, LAYER_TOL, TRAIN_MODE_TOL, TRAIN_TOL, TRAIN_UNRELATED
from lenet_spec.frameworks import NAMES, FrameworkMissing, module
from lenet_spec.probe import Run, Unit, draw_mask, loss_of

from . import conventions
from .pairs import TRANSPOSE, Correspondence, MappingError, apply_params, correspond, mapping_rows, read_mapping, type_pair, write_mapping

DTYPES = ("float64", "float32")
OPTIMIZERS = ("sgd", "momentum", "adam")
# float32 is judged against rounding measured in the same run: at each tensor, each framework's
# own float32 result against the float64 one (torch's float64, proven equal to paddle's first).
# The smaller of the two floors is the measure: the larger could never be exceeded (the two float32
# results cannot be further apart than the sum of their distances from float64), so a side whose
# float32 is far worse than the other framework's on the same layer would pass unseen. A float32
# difference is a defect above FLOAT32_FACTOR times that floor (and never below one float32 ulp of
# the tensor's scale). The factors are set from measurement (python -m benchmarks.diff_floor: 6
# seeds, batches of 8 and 64, the corpus's 8 right ports and the project's 7 variants, 180 runs, all equal):
# the largest difference over the floor was 6.9 in the forward phases and 25 in the backward one,
# where a batch's sums run long and one framework's float32 kernel is that much more accurate than
# the other's; each factor is the next power of two above 2x its worst. A reduced precision
# left in a port stands hundreds of times above the floor (a float16 rounding: 750x, tests/test_diff.py).
FLOAT32_FACTOR = {"forward": 16.0, "backward": 64.0}
FLOAT32_ULP = float(np.finfo(np.float32).eps)
# A difference that follows accepted ones is accepted with them only up to this multiple of the
# largest of them: a later difference far larger than they explain is not theirs.
FOLLOWING_BOUND = 1e3
MAX_FOLLOWERS = 200  # following differences written to the JSON, at most
MAX_VALUES = 1 << 27  # --batch times the values of one --input example: 1 GiB of float64
MOMENTUM = 0.9  # --optimizer momentum
MOMENTUM_AS_PADDLE_HOLDS_IT = float(np.float32(MOMENTUM))


class DiffError(Exception):
    """The pair cannot be compared (exit 2): one line naming the problem and the fix."""


# --- loading the user's models ---
def load_factory(spec: str, side: str):
    """The model that FILE.py:NAME or module.path:NAME makes (NAME called with no arguments).

    Raises:
        DiffError: one line naming the file or module and what went wrong there.
    """
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise DiffError(f"{side.upper()} {spec!r}: give FILE.py:NAME or module.path:NAME (NAME: a class or a function returning the model)")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise DiffError(f"{side.upper()} {spec}: no file {where}")
        mod_name = f"_parity_diff_{side}_{path.stem}"
        folder = str(path.resolve().parent)
        sys.path.insert(0, folder)  # the file's own imports of its neighbours
        try:
            loader = importlib.util.spec_from_file_location(mod_name, path)
            mod = importlib.util.module_from_spec(loader)
            sys.modules[mod_name] = mod
            loader.loader.exec_module(mod)
        except BaseException as e:  # the user's file: whatever it raises is a reason it cannot be compared
            if isinstance(e, KeyboardInterrupt):
                raise
            raise DiffError(f"{side.upper()} {spec}: importing {where} raised {_one_line(e)}") from None
        finally:
            sys.path.remove(folder)
    else:
        try:
            mod = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise DiffError(f"{side.upper()} {spec}: no module {e.name!r} ({where} is neither a FILE.py nor an importable module)") from None
        except Exception as e:  # noqa: BLE001  (its import is user code)
            raise DiffError(f"{side.upper()} {spec}: importing {where} raised {_one_line(e)}") from None
    factory = getattr(mod, name, None)
    if factory is None:
        public = sorted(n for n, v in vars(mod).items() if not n.startswith("_") and callable(v) and getattr(v, "__module__", "") == mod.__name__)
        raise DiffError(f"{side.upper()} {spec}: {where} has no {name!r}" + (f" (it defines {', '.join(public[:8])})" if public else ""))
    if not callable(factory):
        raise DiffError(f"{side.upper()} {spec}: {name} is a {type(factory).__name__}, not a class or a function returning the model")
    try:
        return factory()
    except Exception as e:  # noqa: BLE001  (the constructor is user code)
        raise DiffError(f"{side.upper()} {spec}: {name}() raised {_one_line(e)}; a model needing arguments takes a factory (see --help)") from None


def _one_line(e: BaseException) -> str:
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    at = f" at {last.tb_frame.f_code.co_filename}:{last.tb_lineno}" if last is not None else ""
    return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}{at}"


# --- the report ---
@dataclass
class Finding:
    phase: str  # forward | backward | train
    mode: str  # eval | train
    dtype: str
    step: int  # 0 before training; N after the Nth optimizer step
    torch: str | None  # the module's dotted name in its model, or a tensor's full name
    paddle: str | None
    cause: str  # layer | between | state | parameter | raised | structure
    rel: float  # max |torch - paddle| / max |torch|
    abs: float = 0.0
    share: float = 0.0  # of the elements, the share over tolerance
    tol: float = 0.0
    what: str = "output"  # output | output_grad | grad | loss | param | buffer | model_output | structure
    torch_at: str = ""  # FILE:LINE of the call (or the class)
    paddle_at: str = ""
    torch_type: str = ""
    paddle_type: str = ""
    torch_tensor: str = ""  # a parameter's or buffer's full name, when the difference is in one
    paddle_tensor: str = ""
    convention: str | None = None
    explanation: str = ""
    fix: str = ""
    following: bool = False  # follows from an earlier difference
    accepted: bool = False  # a convention passed to --accept, checked against its formula
    detail: str = ""


@dataclass
class Phase:
    phase: str
    mode: str
    dtype: str
    steps: str  # "0", "1-3", "3"
    compared: int = 0
    worst: str = ""
    rel: float = 0.0
    tol: float = 0.0  # float64's tolerance; float32: the largest tolerance used (measured floor times the factor)
    floor: float = 0.0  # float32: the floor at the worst tensor
    ratio: float = 0.0  # float32: the largest difference over its floor (the float32 judgement's margin: a defect above FLOAT32_FACTOR)
    flips: int = 0  # backward, float32: decisions (a ReLU on or off, a max-pool winner) made otherwise than in float64 or by the other side
    over: int = 0  # tensors over tolerance
    passed: bool = True


@dataclass
class Report:
    """What parity.diff found. `equal` is True only when every phase agreed (and the structure
    is complete); `str(report)` is the table; `to_json()` the document of --json."""

    equal: bool
    first_difference: Finding | None
    mapping: list[dict]
    unmatched: dict[str, list[str]]
    phases: list[Phase]
    findings: list[Finding]  # the first difference and every new one (not those that follow)
    following: int = 0  # differences that follow from an earlier one
    followers: list[Finding] = field(default_factory=list)  # those differences (the JSON shows the first MAX_FOLLOWERS)
    notes: list[str] = field(default_factory=list)
    names: tuple[str, ...] = NAMES
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {
            "equal": self.equal,
            "first_difference": asdict(self.first_difference) if self.first_difference else None,
            "mapping": self.mapping,
            "unmatched": self.unmatched,
            "phases": [asdict(p) for p in self.phases],
            "findings": [asdict(f) for f in self.findings],
            "following": self.following,
            "following_differences": [asdict(f) for f in self.followers[:MAX_FOLLOWERS]],
            "notes": self.notes,
            "models": {"torch": self.names[0], "paddle": self.names[1]},
            "seconds": round(self.seconds, 3),
        }

    def __str__(self) -> str:
        return format_report(self)


def _rel(t: np.ndarray, p: np.ndarray, scale: float | None = None) -> tuple[float, float, np.ndarray]:
    t = np.asarray(t, np.float64)
    d = np.abs(t - np.asarray(p, np.float64))
    s = float(np.abs(t).max(initial=0.0)) if scale is None else scale
    a = float(d.max(initial=0.0))
    return a, (a / s if s > 0 else (0.0 if a == 0 else float("inf"))), d / (s if s > 0 else 1.0)


class _Side:
    def __init__(self, name: str, model):
        self.name, self.model = name, model
        self.probe = module(name, "diff")
        self.units, self.modules = self.probe.units(model)

    def run(self, x: np.ndarray, **kw) -> Run:
        return self.probe.run(self.model, self.modules, self.units, x, **kw)


def _relayout(pp, value: np.ndarray) -> np.ndarray:
    """A paired tensor in the other side's layout (a transpose is its own inverse)."""
    return value.T if pp.layout == TRANSPOSE else value


class _Engine:
    """One comparison: the phases in order, every tensor judged, findings kept in order."""

    def __init__(self, t: _Side, p: _Side, corr: Correspondence, dtypes, accept, labels, projection):
        self.t, self.p, self.corr = t, p, corr
        self.dtypes, self.accept = dtypes, set(accept)
        self.labels, self.projection = labels, projection
        self.ref64: dict[tuple, np.ndarray] = {}  # torch's float64 tensors, the float32 floors' reference
        self.findings: list[Finding] = []
        self.phases: list[Phase] = []
        self.differs_state: set[int] = set()  # torch units whose state differed after a step
        self.unit_of_t = {up.torch: up for up in corr.units}
        self.first_at: dict[tuple[str, int], str] = {}  # (side, unit) -> where the user's code first calls it
        self.unit_of_p = {up.paddle: up for up in corr.units}

    # judging one tensor
    def judge(
        self, phase: Phase, key: tuple, name: str, t: np.ndarray, p: np.ndarray, dtype: str, tol64: float, scale: float | None = None, drift: bool = False
    ):
        """Returns None when it agrees, else (rel, abs, share, tol). With `drift` (weights after
        float32 steps), float32 is judged as parity.check judges it: a near-tie decided otherwise
        sends two float32 runs along different, equally valid paths, so they differ only when they
        no longer resemble each other (TRAIN_UNRELATED) or are not finite; the floor is shown."""
        t = np.asarray(t)
        p = np.asarray(p)
        if t.shape != p.shape:
            phase.compared += 1
            phase.over += 1
            phase.passed = False
            return float("inf"), float("inf"), 1.0, tol64
        a, rel, d = _rel(t, p, scale)
        if dtype == "float64":
            if "float32" in self.dtypes:  # float32's floors need torch's float64 tensor; kept only then
                self.ref64[key] = np.asarray(t, np.float64)
            tol = tol64
        else:
            ref = self.ref64.get(key)
            if ref is None or ref.shape != t.shape:
                tol = LAYER_TOL["float32"]
            else:
                s = float(np.abs(ref).max(initial=0.0)) if scale is None else scale
                s = s if s > 0 else 1.0
                floor_t = float(np.abs(ref - t).max(initial=0.0)) / s
                floor_p = float(np.abs(ref - p).max(initial=0.0)) / s
                floor = max(min(floor_t, floor_p), FLOAT32_ULP)
                tol = TRAIN_UNRELATED if drift else FLOAT32_FACTOR["backward" if phase.phase == "backward" else "forward"] * floor
                if not drift:
                    phase.ratio = max(phase.ratio, rel / floor)
                if rel > phase.rel or not phase.worst:
                    phase.floor = min(floor_t, floor_p)
            phase.tol = max(phase.tol, tol)
        phase.compared += 1
        if rel > phase.rel or not phase.worst:
            phase.rel, phase.worst = rel, name
        if dtype == "float64":
            phase.tol = tol
        if not (rel <= tol) or not np.isfinite(rel):
            phase.over += 1
            phase.passed = False
            return rel, a, float((d > tol).mean()) if d.size else 1.0, tol
        return None

    def add(self, f: Finding, new: bool | None = None) -> Finding:
        """Keep a difference: new (the first, or a layer that disagrees on the same input), or
        following from an earlier one; accepted when its convention was passed to --accept, or
        when it follows only from accepted ones."""
        earlier = [g for g in self.findings if g.dtype == f.dtype or g.dtype == "float64"]
        if new is None:
            new = not earlier or f.cause in ("layer", "structure", "raised")
        if any((g.torch, g.paddle, g.cause) == (f.torch, f.paddle, f.cause) for g in self.findings):
            new = False  # the same difference seen again (in training mode after evaluation mode, in float32 after float64)
        f.following = f.following or not new
        if f.convention and (f.convention in self.accept or f.convention in conventions.FRAMEWORK_ROUNDING):
            f.accepted = True
        heads = [g for g in earlier if not g.following]
        explained = max((g.rel for g in earlier if g.accepted), default=0.0)
        if f.following and heads and all(g.accepted for g in heads) and f.rel <= FOLLOWING_BOUND * explained:
            f.accepted = True  # what follows from accepted differences, and is no larger than they explain, is accepted with them
        self.findings.append(f)
        return f

    def _names(self, ti: int, pi: int) -> dict:
        tc, pc = self.t_calls[ti], self.p_calls[pi]
        tu, pu = self.t.units[tc.unit], self.p.units[pc.unit]
        return {
            "torch": tu.name,
            "paddle": pu.name,
            "torch_at": tc.at or tu.defined,
            "paddle_at": pc.at or pu.defined,
            "torch_type": tu.type,
            "paddle_type": pu.type,
        }

    # --- phases ---
    def forward(self, dtype: str, train: bool, x: np.ndarray, masks_t, masks_p, step: int = 0, phase_name: str = "forward") -> tuple[Run, Run]:
        mode = "train" if train else "eval"
        backward = train and phase_name == "forward"
        tr = self.t.run(x, train=train, keep=True, masks=masks_t, backward=backward, labels=self.labels, projection=self.projection)
        pr = self.p.run(x, train=train, keep=True, keep_inputs=False, masks=masks_p, backward=backward, labels=self.labels, projection=self.projection)
        self.t_calls, self.p_calls = tr.calls, pr.calls
        phase = Phase(phase_name, mode, dtype, str(step))
        self.phases.append(phase)
        for side, r in (("torch", tr), ("paddle", pr)):
            if r.raised is not None:
                self._raised(phase, side, r, dtype, step)
        if tr.raised or pr.raised:
            return tr, pr
        tol64 = TRAIN_MODE_TOL["float64"] if train else LAYER_TOL["float64"]
        if phase_name == "train":  # after the steps: the weights may stand TRAIN_TOL apart, and so may what they compute
            tol64 = TRAIN_TOL["float64"]
        for ti, pi in self.corr.calls:
            if ti >= len(tr.calls) or pi >= len(pr.calls):
                continue
            tc, pc = tr.calls[ti], pr.calls[pi]
            key = (phase_name, mode, step, "output", ti)
            bad = self.judge(phase, key, self.t.units[tc.unit].name, tc.output, pc.output, dtype, tol64, drift=phase_name == "train")
            if bad is not None:
                self._diagnose_output(phase, ti, pi, bad, dtype, train, masks_t, step)
        bad = self.judge(phase, (phase_name, mode, step, "model_output"), "(model output)", tr.output, pr.output, dtype, tol64, drift=phase_name == "train")
        if bad is not None:
            self.add(
                Finding(
                    phase_name,
                    mode,
                    dtype,
                    step,
                    "(model output)",
                    "(model output)",
                    "between",
                    *bad,
                    what="model_output",
                    detail="every paired layer agrees, but the models' outputs differ: code after the last layer (a functional op in forward)",
                )
            )
        return tr, pr

    def _raised(self, phase: Phase, side: str, r: Run, dtype: str, step: int) -> None:
        phase.passed = False
        phase.over += 1
        me = self.t if side == "torch" else self.p
        call = r.calls[r.raised_call] if r.raised_call is not None else None
        unit = me.units[call.unit] if call else None
        other = self._counterpart(side, r.raised_call) if call is not None else None
        f = Finding(
            "forward" if phase.phase == "structure" else phase.phase,
            phase.mode,
            dtype,
            step,
            None,
            None,
            "raised",
            float("inf"),
            what="output",
            detail=f"{side}'s {unit.name or '(model)'} ({unit.type}) raised on input {', '.join(str(s) for s in call.in_shapes)}: {r.raised}"
            if unit
            else f"{side}'s model raised outside its layers: {r.raised}",
        )
        if unit:
            setattr(f, side, unit.name)
            setattr(f, f"{side}_type", unit.type)
            setattr(f, f"{side}_at", call.at or unit.defined)
            if other:
                setattr(f, "paddle" if side == "torch" else "torch", other)
        self.add(f)

    def _counterpart(self, side: str, i: int) -> str | None:
        """The other model's unit at call `i`'s place: the call after the partner of the last paired
        call before it, if its type is a counterpart."""
        me, other = (self.t, self.p) if side == "torch" else (self.p, self.t)
        my_calls, other_calls = (self.t_calls, self.p_calls) if side == "torch" else (self.p_calls, self.t_calls)
        before = [(a, b) if side == "torch" else (b, a) for a, b in self.corr.calls]
        prior = [o for m, o in before if m < i]
        j = (max(prior) + 1) if prior else 0
        if j >= len(other_calls) or i >= len(my_calls):
            return None
        mine, theirs = me.units[my_calls[i].unit], other.units[other_calls[j].unit]
        pair = type_pair(mine.type, theirs.type) if side == "torch" else type_pair(theirs.type, mine.type)
        return theirs.name if pair is not None else None

    def _diagnose_output(self, phase: Phase, ti: int, pi: int, bad, dtype: str, train: bool, masks_t, step: int) -> None:
        rel, a, share, tol = bad
        tc, pc = self.t_calls[ti], self.p_calls[pi]
        tu, pu = self.t.units[tc.unit], self.p.units[pc.unit]
        names = self._names(ti, pi)
        up = self.unit_of_t.get(tc.unit)
        f = Finding(phase.phase, phase.mode, dtype, step, cause="between", rel=rel, abs=a, share=share, tol=tol, what="output", **names)
        if up is not None and up.types_differ:
            f.detail = f"paired by position: torch's {tu.type} against paddle's {pu.type}"
        same_inputs = [s for s in tc.in_shapes] == [s for s in pc.in_shapes]
        if same_inputs and tc.inputs is not None:
            try:
                alone = self.p.probe.run_unit(self.p.modules[pc.unit], pu, [np.asarray(v, dtype) for v in tc.inputs], train, (masks_t or {}).get(ti))
            except Exception as e:  # noqa: BLE001  (the user's layer)
                alone, f.detail = None, f"paddle's layer alone on torch's input raised {_one_line(e)}"
            if alone is not None:
                a2, rel2, _ = _rel(tc.output, alone)
                if not (rel2 <= tol):
                    f.cause, f.rel, f.abs = "layer", rel2, a2
                    if tc.unit in self.differs_state:
                        f.following = True
                        f.detail = "its state (running statistics) differed after an earlier step"
                    conv = conventions.forward(
                        tu,
                        pu,
                        np.asarray(tc.inputs[0], np.float64),
                        np.asarray(tc.output, np.float64),
                        np.asarray(alone, np.float64),
                        self._local_state(self.t, tc.unit),
                        self._local_state(self.p, pc.unit),
                        train,
                        dtype,
                    )
                    if conv:
                        f.convention, f.explanation, f.fix = conv.name, conv.explanation, conv.fix
                    if not f.detail:
                        f.detail = "paddle's layer, run alone on torch's recorded input, gives another output"
                else:
                    f.detail = f.detail or "each layer agrees on the same input; what reaches this one differs (the code between the layers)"
        elif not same_inputs:
            f.detail = f"the inputs differ in shape: torch {tc.in_shapes}, paddle {pc.in_shapes} (the code between the layers)"
        self.add(f, False if f.following else None)

    def _local_state(self, side: _Side, unit: int) -> dict[str, np.ndarray]:
        u = side.units[unit]
        full = side.probe.state(side.model)
        return {local: full[name] for (local, _), name in zip(u.params + u.buffers, u.state_names) if name in full}

    def backward(self, dtype: str, tr: Run, pr: Run) -> None:
        phase = Phase("backward", "train", dtype, "0")
        self.phases.append(phase)
        if tr.loss is None or pr.loss is None:
            return
        new = None if not any(g.dtype == dtype for g in self.findings) else False
        flips = 0 if dtype == "float64" else self._flips(tr, pr)
        phase.flips = flips
        tol64 = GRAD_TOL["float64"]
        bad = self.judge(phase, ("backward", "loss"), "(loss)", np.array(tr.loss), np.array(pr.loss), dtype, LAYER_TOL["float64"])
        if bad is not None:
            self.add(Finding("backward", "train", dtype, 0, "(loss)", "(loss)", "between", *bad, what="loss"), new)
        order = sorted(self.corr.calls, key=lambda c: -c[0])
        seen_units: set[int] = set()
        agreed: tuple[int, int] | None = None  # the latest call (in call order) whose output gradient agreed, seen so far
        for ti, pi in order:
            tc, pc = tr.calls[ti], pr.calls[pi]
            if tc.grad is not None and pc.grad is not None:
                bad = self.judge(phase, ("backward", "output_grad", ti), self.t.units[tc.unit].name, tc.grad, pc.grad, dtype, tol64, drift=flips > 0)
                if bad is None:
                    agreed = (ti, pi)
                elif new is not False:
                    self.add(self._gradient_finding(dtype, tr, pr, ti, pi, agreed, bad), new)
                    new = False
                else:
                    self.add(
                        Finding(
                            "backward",
                            "train",
                            dtype,
                            0,
                            cause="between",
                            rel=bad[0],
                            abs=bad[1],
                            share=bad[2],
                            tol=bad[3],
                            what="output_grad",
                            detail="the gradient at this layer's output differs, as it does after it",
                            **self._names(ti, pi),
                        ),
                        False,
                    )
            up = self.unit_of_t.get(tc.unit)
            if up is None or tc.unit in seen_units:
                continue
            seen_units.add(tc.unit)
            params = [pp for pp in up.params if not pp.buffer and pp.torch in tr.grads and pp.paddle in pr.grads]
            scale = max((float(np.abs(tr.grads[pp.torch]).max(initial=0.0)) for pp in params), default=0.0)  # the layer's: a zero-by-construction bias
            for pp in params:
                bad = self.judge(
                    phase,
                    ("backward", "grad", pp.torch),
                    pp.torch,
                    tr.grads[pp.torch],
                    _relayout(pp, pr.grads[pp.paddle]),
                    dtype,
                    tol64,
                    scale or None,
                    drift=flips > 0,
                )
                if bad is not None:
                    self.add(
                        Finding(
                            "backward",
                            "train",
                            dtype,
                            0,
                            self.t.units[tc.unit].name,
                            self.p.units[pc.unit].name,
                            "layer",
                            *bad,
                            what="grad",
                            torch_tensor=pp.torch,
                            paddle_tensor=pp.paddle,
                            torch_at=tc.at,
                            paddle_at=pc.at,
                            detail="the parameter's gradient differs while the gradient reaching its layer's output agrees: that layer's backward",
                            torch_type=self.t.units[tc.unit].type,
                            paddle_type=self.p.units[pc.unit].type,
                        ),
                        new,
                    )
                    new = False

    def _gradient_finding(self, dtype: str, tr: Run, pr: Run, ti: int, pi: int, agreed, bad) -> Finding:
        """The first gradient that differs, at call ti's output: blamed on the unit that consumes
        that output when the gradient still agreed at the consumer's own output (its backward
        changed it), else on the code between them (or the loss, after the last unit)."""
        rel, a, share, tol = bad
        tc = tr.calls[ti]
        f = Finding("backward", "train", dtype, 0, cause="between", rel=rel, abs=a, share=share, tol=tol, what="output_grad", **self._names(ti, pi))
        if agreed is None:
            f.detail = "the gradient of the loss at the last layer's output differs: the loss, or code after the last layer"
            return f
        tn, pn = agreed
        consumer = tr.calls[tn]
        if consumer.inputs and tc.output is not None and consumer.inputs[0].shape == tc.output.shape and np.array_equal(consumer.inputs[0], tc.output):
            names = self._names(tn, pn)
            f.torch, f.paddle, f.torch_at, f.paddle_at, f.torch_type, f.paddle_type = (
                names["torch"],
                names["paddle"],
                names["torch_at"],
                names["paddle_at"],
                names["torch_type"],
                names["paddle_type"],
            )
            f.cause = "layer"
            f.detail = (
                f"its backward turns a gradient that agrees at its output into one that differs at its input (the output of "
                f"{self.t.units[tc.unit].name or '(model)'})"
            )
            conv = conventions.backward(
                self.t.units[consumer.unit],
                np.asarray(tc.grad, np.float64),
                np.asarray(pr.calls[pi].grad, np.float64),
                consumer.in_shapes[0],
                consumer.out_shape,
            )
            if conv:
                f.convention, f.explanation, f.fix = conv.name, conv.explanation, conv.fix
        else:
            f.detail = (
                f"the gradient differs at this layer's output but agrees at the output of {self.t.units[consumer.unit].name}, "
                f"the next layer called: the code between them (a functional op in forward)"
            )
        return f

    def _flips(self, tr: Run, pr: Run) -> int:
        """Decisions made otherwise (float32 near-ties): elements of a layer's output gradient that
        are exactly zero in one of torch float64, torch float32 and paddle float32 but not in all
        (a ReLU off, a max-pool's loser: the gradient takes another path). A batch with flips
        cannot test float32 gradients against rounding (lenet_spec.compare.decision_flips); its
        gradients are then judged as drift, like float32 training."""
        flips = 0
        for ti, pi in self.corr.calls:
            a, b, ref = tr.calls[ti].grad, pr.calls[pi].grad, self.ref64.get(("backward", "output_grad", ti))
            if a is None or b is None or ref is None or not (a.shape == b.shape == ref.shape):
                continue
            zeros = [(v == 0) for v in (ref, a, b)]
            flips += int(((zeros[0] != zeros[1]) | (zeros[0] != zeros[2])).sum())
        return flips

    def train(self, dtype: str, batches, masks_for, optimizer: str, lr: float, bn_inputs) -> None:
        # paddle's Momentum keeps its momentum in float32 (measured: the updates 2.4e-8 apart with 0.9 on
        # both sides, 0 with float32(0.9) in torch): torch's SGD takes the value paddle holds
        opts = {
            self.t.name: self.t.probe.optimizer(self.t.model, optimizer, lr, MOMENTUM_AS_PADDLE_HOLDS_IT),
            self.p.name: self.p.probe.optimizer(self.p.model, optimizer, lr, MOMENTUM),
        }
        phase = Phase("train", "train", dtype, "1" if len(batches) == 1 else f"1-{len(batches)}")
        self.phases.append(phase)
        pairs = self.corr.param_pairs()
        for step, (x, labels) in enumerate(batches, 1):
            before = self.t.probe.state(self.t.model)
            masks_t, masks_p = masks_for(step)
            losses = {}
            for s, masks in ((self.t, masks_t), (self.p, masks_p)):
                r = s.run(x, train=True, masks=masks, backward=True, labels=labels, projection=self.projection)
                if r.raised:
                    self._raised(phase, s.name, r, dtype, step)
                    return
                losses[s.name] = r.loss
                s.probe.step(opts[s.name])
            loss_tol = LAYER_TOL["float64"] if step == 1 else TRAIN_TOL["float64"]  # after a step, the weights may stand TRAIN_TOL apart
            bad = self.judge(phase, ("train", step, "loss"), "(loss)", np.array(losses["torch"]), np.array(losses["paddle"]), dtype, loss_tol, drift=True)
            if bad is not None:
                self.add(Finding("train", "train", dtype, step, "(loss)", "(loss)", "between", *bad, what="loss"))
            ts, ps = self.t.probe.state(self.t.model), self.p.probe.state(self.p.model)
            # a parameter is judged on its unit's scale (the largest of its unit's parameters): a bias
            # that starts at zero (paddle's default) and that only rounding moves (before a BatchNorm,
            # whose gradient is zero but for rounding) has no scale of its own, and two frameworks'
            # roundings of nothing stand 60% apart; parity.check judges such biases by their weight too
            unit_scale = {
                pp.torch: max(float(np.abs(ts[q.torch]).max(initial=0.0)) for q in up.params if not q.buffer)
                for up in self.corr.units
                for pp in up.params
                if not pp.buffer
            }
            for pp in pairs:
                bad = self.judge(
                    phase,
                    ("train", step, pp.torch),
                    pp.torch,
                    ts[pp.torch],
                    _relayout(pp, ps[pp.paddle]),
                    dtype,
                    TRAIN_TOL["float64"],
                    scale=unit_scale.get(pp.torch),
                    drift=True,
                )
                if bad is None:
                    continue
                tunit = next(up for up in self.corr.units if pp in up.params)
                f = Finding(
                    "train",
                    "train",
                    dtype,
                    step,
                    self.t.units[tunit.torch].name,
                    self.p.units[tunit.paddle].name,
                    "state" if pp.buffer else "parameter",
                    *bad,
                    what="buffer" if pp.buffer else "param",
                    torch_type=self.t.units[tunit.torch].type,
                    paddle_type=self.p.units[tunit.paddle].type,
                    torch_tensor=pp.torch,
                    paddle_tensor=pp.paddle,
                    torch_at=self.first_at.get(("torch", tunit.torch), ""),
                    paddle_at=self.first_at.get(("paddle", tunit.paddle), ""),
                )
                if pp.buffer:
                    self.differs_state.add(tunit.torch)
                    local = pp.torch.rsplit(".", 1)[-1]
                    conv = conventions.state(
                        self.t.units[tunit.torch],
                        local,
                        bn_inputs.get(tunit.torch) if step == 1 else None,
                        before[pp.torch],
                        ts[pp.torch],
                        _relayout(pp, ps[pp.paddle]),
                        dtype,
                    )
                    if conv:
                        f.convention, f.explanation, f.fix = conv.name, conv.explanation, conv.fix
                    f.detail = "the running statistic differs after the step"
                else:
                    f.detail = "the parameter differs after the update while everything before agreed: the optimizer's rule or its settings"
                self.add(f)


def compare(
    torch_model,
    paddle_model,
    inputs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    source: str = "torch",
    copy_weights: bool = True,
    dtypes: tuple[str, ...] = DTYPES,
    train: int = 0,
    optimizer: str = "sgd",
    lr: float = 0.01,
    batches: list[tuple[np.ndarray, np.ndarray | None]] | None = None,
    mapping: str | os.PathLike | None = None,
    write_mapping_to: str | os.PathLike | None = None,
    accept: tuple[str, ...] = (),
    seed: int = 0,
    names: tuple[str, str] = ("torch model", "paddle model"),
) -> Report:
    """Prove `torch_model` and `paddle_model` compute the same thing, or say where they do not.

    Args:
        inputs: a batch (N, ...) of float inputs; labels: (N,) class indices for the
            cross-entropy (drawn at random when None and the output is (N, classes)).
        source: whose weights are copied into the other ("torch" or "paddle"); with
            copy_weights=False the models are compared as they are.
        dtypes: "float64" (the proof) and/or "float32" (judged against measured rounding).
        train: optimizer steps to compare (sgd, momentum or adam at `lr`) on `batches` (the
            first is `inputs`; the rest drawn like it when not given).
        mapping: an edited mapping file (--mapping) instead of the found correspondence.
        accept: conventions accepted when the figures match their formula exactly
            (e.g. "batchnorm_biased_variance").
    Returns:
        The Report: `report.equal`, `str(report)` the table, `report.to_json()`.

    Example (a parity test in your own suite):
        report = parity.diff.compare(TorchNet(), PaddleNet(), np.random.rand(8, 1, 28, 28))
        assert report.equal, report
    """
    with _giving_back() as restore:
        import time

        start = time.perf_counter()
        for given, fw in ((torch_model, "torch"), (paddle_model, "paddle")):
            if not module(fw, "diff").is_model(given):
                other = next((n for n in NAMES if n != fw and module(n, "diff").is_model(given)), None)
                raise DiffError(
                    f"the {fw} side is {'a ' + other + ' model' if other else 'a ' + type(given).__name__}, not a {fw} model"
                    + ("; swap the two" if other else "")
                )
        if source not in NAMES:
            raise DiffError(f"source {source!r}: give torch or paddle")
        dtypes = tuple(d for d in DTYPES if d in dtypes)
        inputs = np.asarray(inputs, np.float64)
        t, p = _Side("torch", torch_model), _Side("paddle", paddle_model)
        src, dst = (t, p) if source == "torch" else (p, t)
        src_dtype = src.probe.dtype_of(src.model)
        # afterwards each model is in its own dtype and mode again, holding the weights compared (the
        # target: the source's, converted; no copy of its own initialisation is kept)
        compared: dict[str, dict[str, np.ndarray]] = {}
        for s in (t, p):
            kept = (s.probe.dtype_of(s.model), s.model.training)
            restore.append(lambda s=s, kept=kept: _give_back(s, *kept, compared.get(s.name)))
        original = src.probe.state(src.model)  # for the round trip, in the source's own dtype
        for s in (t, p):
            s.probe.cast(s.model, "float64")
        notes: list[str] = []
        tr, pr = t.run(inputs, train=False), p.run(inputs, train=False)
        for side, r in (("torch", tr), ("paddle", pr)):
            if r.odd_output:
                raise DiffError(
                    f"the {side} model returns a {r.odd_output}, not one tensor; compare a model whose forward returns the output (a wrapper of two lines)"
                )
        corr = correspond(t.units, tr.calls, p.units, pr.calls)
        if mapping is not None:
            unit_map, param_map = read_mapping(mapping, t.units, p.units)
            corr = correspond(t.units, tr.calls, p.units, pr.calls, unit_map)
            apply_params(corr, param_map)
            notes.append(f"the correspondence is the edited mapping {mapping}")
        rows = mapping_rows(t.units, p.units, corr)
        notes += _harmonise(t, p, corr, restore)
        if train and optimizer == "momentum":
            notes.append(f"paddle keeps Momentum's momentum in float32: torch's SGD took the same value, {MOMENTUM_AS_PADDLE_HOLDS_IT!r}")
        unmatched = {
            "torch": [_call_name(t.units, tr.calls[i]) for i in corr.torch_alone]
            + [f"{n} (its weights reach no paddle parameter)" for n in _uncopied(corr, "torch")],
            "paddle": [_call_name(p.units, pr.calls[i]) for i in corr.paddle_alone]
            + [f"{n} (no torch parameter reaches it)" for n in _uncopied(corr, "paddle")],
            "ambiguous": corr.ambiguous,
        }
        if write_mapping_to is not None:
            write_mapping(write_mapping_to, rows, unmatched)
        # labels and the loss
        n = len(inputs)
        rng = np.random.default_rng([seed, 11])
        out = tr.output if tr.output is not None else pr.output
        projection = None
        if out is not None:
            if labels is None and out.ndim == 2 and out.shape[1] > 1:
                labels = rng.integers(0, out.shape[1], n)
            if loss_of(out, labels) == "projection":
                projection = rng.standard_normal(out.shape)
                notes.append(f"the output is {out.shape}, not (N, classes) with labels: the loss is the sum of output x a fixed random tensor, over N")
        engine = _Engine(t, p, corr, dtypes, accept, labels, projection)
        engine.t_calls, engine.p_calls = tr.calls, pr.calls
        for side, r in (("torch", tr), ("paddle", pr)):
            for c in reversed(r.calls):
                engine.first_at[(side, c.unit)] = c.at
        report = Report(False, None, rows, unmatched, engine.phases, engine.findings, notes=notes, names=names)
        structural = Phase("structure", "eval", "float64", "0")
        engine.phases.append(structural)
        for side, r in (("torch", tr), ("paddle", pr)):
            if r.raised:
                engine._raised(structural, side, r, "float64", 0)
        after_raise = False if (tr.raised or pr.raised) else None  # what a raise leaves unpaired follows from it
        for i in corr.torch_alone:
            c = tr.calls[i]
            engine.add(
                Finding(
                    "forward",
                    "eval",
                    "float64",
                    0,
                    t.units[c.unit].name,
                    None,
                    "structure",
                    float("inf"),
                    what="structure",
                    torch_type=t.units[c.unit].type,
                    torch_at=c.at,
                    detail="this torch layer has no paddle counterpart (a layer missing from the port, or of another kind or shape)",
                ),
                after_raise,
            )
        for i in corr.paddle_alone:
            c = pr.calls[i]
            engine.add(
                Finding(
                    "forward",
                    "eval",
                    "float64",
                    0,
                    None,
                    p.units[c.unit].name,
                    "structure",
                    float("inf"),
                    what="structure",
                    paddle_type=p.units[c.unit].type,
                    paddle_at=c.at,
                    detail="this paddle layer has no torch counterpart",
                ),
                after_raise,
            )
        for line in corr.ambiguous:
            engine.add(Finding("forward", "eval", "float64", 0, None, None, "structure", float("inf"), what="structure", detail=f"ambiguous: {line}"))
        structural.passed = not engine.findings
        copyable = not corr.ambiguous and not _uncopied(corr, dst.name) and not tr.raised and not pr.raised
        if not copyable:
            if not (tr.raised or pr.raised) and _uncopied(corr, dst.name):
                engine.add(
                    Finding(
                        "forward",
                        "eval",
                        "float64",
                        0,
                        None,
                        None,
                        "structure",
                        float("inf"),
                        what="structure",
                        detail=f"the weights cannot be copied: {', '.join(_uncopied(corr, dst.name)[:6])} of the {dst.name} model has no counterpart",
                    )
                )
            return _finish(report, engine, start)
        # the weights: the target initialised otherwise, then every weight copied; the copy must go back bit-exactly
        pairs = corr.param_pairs()
        if copy_weights:
            src_state = src.probe.state(src.model)
            dst_state = dst.probe.state(dst.model)
            noise = np.random.default_rng([seed, 13])
            dst.probe.load_state(dst.model, {k: noise.standard_normal(v.shape) for k, v in dst_state.items() if v.dtype.kind == "f"})
            copied = _copied(pairs, src_state, source)
            dst.probe.load_state(dst.model, copied)
            now = dst.probe.state(dst.model)
            back = {}
            for pp in pairs:
                back[pp.torch if source == "torch" else pp.paddle] = _relayout(pp, now[pp.paddle] if source == "torch" else now[pp.torch])
            missed = [k for k, v in now.items() if v.dtype.kind == "f" and k not in copied]
            if missed:
                engine.add(
                    Finding(
                        "forward",
                        "eval",
                        "float64",
                        0,
                        None,
                        None,
                        "structure",
                        float("inf"),
                        what="structure",
                        detail=f"{', '.join(missed[:6])} of the {dst.name} model was not overwritten by the copy",
                    )
                )
                return _finish(report, engine, start)
            inexact = [k for k, v in back.items() if not np.array_equal(v.astype(src_dtype), original[k])]
            n_copied = len(copied)
            del src_state, dst_state, copied, now, back, original  # the weights are in the models now; no copy is kept
            if inexact:
                notes.append(f"round trip NOT bit-exact: {', '.join(inexact[:6])}")
            else:
                notes.append(f"{n_copied} tensors copied {source} -> {dst.name}; every one overwritten, and the round trip is bit-exact")
        else:
            notes.append("weights compared as given (copy_weights=False)")
        base = compared
        base.update({s.name: s.probe.state(s.model) for s in (t, p)})  # float64: what each phase starts from
        # the batches of --train: the first is the compared batch (its masks too), so step 1's BatchNorm inputs are known
        if train:
            batches = list(batches or [])
            if not batches:
                batches = [(inputs, labels)]
            while len(batches) < train:
                batches.append((rng.random(inputs.shape), rng.integers(0, out.shape[1], n) if labels is not None else None))
            batches = batches[:train]
        mask_rng_seed = [seed, 17]
        for dtype in ("float64", "float32") if "float32" in dtypes else ("float64",):
            judged = dtype in dtypes
            mark = len(engine.findings), len(engine.phases)
            for s in (t, p):
                s.probe.cast(s.model, "float64")
                s.probe.load_state(s.model, base[s.name])
                s.probe.cast(s.model, dtype)
            x = inputs.astype(dtype)
            engine.forward(dtype, False, x, None, None)
            masks_t, masks_p = _masks(engine, tr.calls, pr.calls, np.random.default_rng(mask_rng_seed), corr)
            for s in (t, p):
                s.probe.load_state(s.model, {k: v.astype(dtype) for k, v in base[s.name].items()})
            if dtype == "float64":
                _unshared_randomness(engine, t, p, x, masks_t, masks_p, base)
            tr2, pr2 = engine.forward(dtype, True, x, masks_t, masks_p)
            bn_inputs = {c.unit: np.asarray(c.inputs[0], np.float64) for c in tr2.calls if c.inputs and t.units[c.unit].buffers}
            if not (tr2.raised or pr2.raised):
                engine.backward(dtype, tr2, pr2)
            if train and not (tr2.raised or pr2.raised):
                for s in (t, p):
                    s.probe.load_state(s.model, {k: v.astype(dtype) for k, v in base[s.name].items()})
                step_rng = {}

                def masks_for(step, dtype=dtype):
                    if step == 1:
                        return masks_t, masks_p
                    if step not in step_rng:
                        step_rng[step] = _masks(engine, tr.calls, pr.calls, np.random.default_rng([seed, 17, step]), corr)
                    return step_rng[step]

                engine.train(dtype, [(b.astype(dtype), lab) for b, lab in batches], masks_for, optimizer, lr, bn_inputs)
                engine.forward(dtype, False, x, None, None, step=train, phase_name="train")
            if not judged:  # float64 computed only as float32's reference
                del engine.findings[mark[0] :]
                del engine.phases[mark[1] :]
        return _finish(report, engine, start)


def _copied(pairs, src_state: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The source's tensors under the target's names, in the target's layout: what the copy loads."""
    if source == "torch":
        return {pp.paddle: _relayout(pp, src_state[pp.torch]) for pp in pairs}
    return {pp.torch: _relayout(pp, src_state[pp.paddle]) for pp in pairs}


def copy_weights(torch_model, paddle_model, inputs: np.ndarray) -> int:
    """The torch model's weights into the paddle model, paired as `compare` pairs them (one forward
    pass of each on `inputs`, in evaluation mode, then the correspondence) and copied as it copies
    them (a Linear's weight transposed): for training a pair from the same start without comparing
    it (python -m benchmarks.port_epoch). Every floating tensor of the paddle model is overwritten;
    both models are left in evaluation mode. Returns the number of tensors copied.

    Raises:
        DiffError: the pair has no complete correspondence (run parity.diff on it to see where).
    """
    t, p = _Side("torch", torch_model), _Side("paddle", paddle_model)
    tr = t.run(np.asarray(inputs).astype(t.probe.dtype_of(torch_model)), train=False)
    pr = p.run(np.asarray(inputs).astype(p.probe.dtype_of(paddle_model)), train=False)
    for side, r in (("torch", tr), ("paddle", pr)):
        if r.raised or r.odd_output:
            raise DiffError(f"the {side} model cannot run the input: {r.raised or 'it returns a ' + r.odd_output}")
    corr = correspond(t.units, tr.calls, p.units, pr.calls)
    if corr.ambiguous:  # compare's rule for a copy: no ambiguous pair, every target parameter reached
        raise DiffError(f"the weights cannot be copied: ambiguous: {corr.ambiguous[0]} (python -m parity.diff shows the pairing)")
    if _uncopied(corr, "paddle"):
        raise DiffError(f"the weights cannot be copied: {', '.join(_uncopied(corr, 'paddle')[:6])} of the paddle model has no torch counterpart")
    copied = _copied(corr.param_pairs(), t.probe.state(torch_model), "torch")
    missed = [k for k, v in p.probe.state(paddle_model).items() if v.dtype.kind == "f" and k not in copied]
    if missed:
        raise DiffError(f"the weights cannot be copied: {', '.join(missed[:6])} of the paddle model has no torch counterpart")
    p.probe.load_state(paddle_model, copied)
    return len(copied)


def _give_back(side: _Side, dtype: str, training: bool, state: dict[str, np.ndarray] | None) -> None:
    if state is not None:
        side.probe.cast(side.model, "float64")
        side.probe.load_state(side.model, state)
    side.probe.cast(side.model, dtype)
    side.probe.set_mode(side.model, training)


def _harmonise(t: _Side, p: _Side, corr: Correspondence, restore: list) -> list[str]:
    """Paddle keeps a normalisation's epsilon and a BatchNorm's momentum in float32 (measured: its
    float64 LayerNorm 1.3e-12 off torch's with the same nominal epsilon; its running mean 2.4e-7
    off after one step). Where the two sides name the same value, torch's paired module takes
    paddle's float32-rounded one for the comparison (and gets its own back after), so what is
    compared is the port, not that rounding. Values that differ are left as they are: a port's
    mistake."""
    changed = []
    for up in corr.units:
        tu, pu = t.units[up.torch], p.units[up.paddle]
        eps = mom = None
        if tu.eps is not None and pu.eps is not None and np.isclose(tu.eps, pu.eps, rtol=1e-6, atol=0) and tu.eps != float(np.float32(pu.eps)):
            eps = float(np.float32(pu.eps))
        if tu.momentum is not None and pu.momentum is not None and np.isclose(tu.momentum, pu.momentum, rtol=1e-6, atol=0):
            kept = float(np.float32(1.0 - pu.momentum))  # the running average's weight, as paddle holds it
            mom = 1.0 - kept if 1.0 - kept != tu.momentum else None
        if eps is None and mom is None:
            continue
        old = t.probe.harmonise(t.modules[up.torch], eps, mom)
        restore.append(lambda m=t.modules[up.torch], old=old, probe=t.probe: probe.harmonise(m, *old))
        changed.append(
            f"{tu.name}" + (f" eps {tu.eps:g} -> {eps!r}" if eps is not None else "") + (f" momentum {tu.momentum:g} -> {mom!r}" if mom is not None else "")
        )
    if not changed:
        return []
    return [
        f"paddle keeps epsilon and momentum in float32; torch's took the same rounded values for the comparison: {'; '.join(changed[:4])}"
        + (f" (and {len(changed) - 4} more)" if len(changed) > 4 else "")
    ]


@contextlib.contextmanager
def _giving_back():
    """A list the comparison fills with what gives the user's models back as they were; run however it ends."""
    restore: list = []
    try:
        yield restore
    finally:
        for undo in restore:
            undo()


def _uncopied(corr: Correspondence, side: str) -> list[str]:
    return [u.split(" ", 1)[1] for u in corr.uncopied if u.startswith(side + " ")]


def _call_name(units: list[Unit], call) -> str:
    u = units[call.unit]
    return f"{u.name or '(model)'} ({u.type})"


def _masks(engine: _Engine, tcalls, pcalls, rng: np.random.Generator, corr: Correspondence):
    """Masks for every paired dropout call, one draw shared by both sides."""
    masks_t, masks_p = {}, {}
    for ti, pi in corr.calls:
        tu, pu = engine.t.units[tcalls[ti].unit], engine.p.units[pcalls[pi].unit]
        if tu.kind and pu.kind and not pu.unsupported and tcalls[ti].in_shapes:
            m = draw_mask(rng, tu.kind, tcalls[ti].in_shapes[0], tu.p)
            masks_t[ti], masks_p[pi] = m, m
    return masks_t, masks_p


def _unshared_randomness(engine: _Engine, t: _Side, p: _Side, x, masks_t, masks_p, base) -> None:
    """Training mode twice on each side, the framework's generator seeded otherwise: a difference
    is randomness the masks do not reach (a functional dropout inside a forward), named at the
    first layer whose input it changes."""
    for s, masks in ((t, masks_t), (p, masks_p)):
        runs = []
        for k in (1, 2):
            s.probe.load_state(s.model, {n: v.astype(x.dtype) for n, v in base[s.name].items()})
            state = s.probe.seed(1000 + k)
            try:
                runs.append(s.run(x, train=True, keep=True, masks=masks))
            finally:
                s.probe.restore(state)
        a, b = runs
        if a.output is None or b.output is None or np.array_equal(a.output, b.output):
            continue
        where, unit = "after its last layer", "(model output)"
        for ca, cb in zip(a.calls, b.calls):
            if ca.inputs and cb.inputs and not all(np.array_equal(u, v) for u, v in zip(ca.inputs, cb.inputs)):
                unit = s.units[ca.unit].name
                where = f"before {unit} ({s.units[ca.unit].type}, called at {ca.at})"
                break
        unit_unsupported = [u for u in s.units if u.unsupported]
        f = Finding(
            "forward",
            "train",
            "float64",
            0,
            None,
            None,
            "between",
            float("inf"),
            what="output",
            detail=f"{s.name}'s training-mode output changes with its own random generator: randomness the shared masks do not reach, {where} "
            f"(a functional dropout inside forward?); use a dropout layer (nn.Dropout) so both sides drop the same units"
            + (f"; {unit_unsupported[0].unsupported}" if unit_unsupported else ""),
        )
        setattr(f, s.name, unit)
        engine.add(f)
    for s in (t, p):
        s.probe.load_state(s.model, {n: v.astype(x.dtype) for n, v in base[s.name].items()})


def _finish(report: Report, engine: _Engine, start: float) -> Report:
    import time

    new = [f for f in engine.findings if not f.following]
    report.findings = new
    report.following = len(engine.findings) - len(new)
    report.followers = [f for f in engine.findings if f.following]
    report.first_difference = engine.findings[0] if engine.findings else None
    report.equal = all(f.accepted for f in engine.findings)
    if engine.findings and report.equal:
        named = sorted({f.convention for f in new if f.convention})
        report.notes.append("accepted: " + ", ".join(f"{c} ({'framework rounding' if c in conventions.FRAMEWORK_ROUNDING else '--accept'})" for c in named))
    report.phases = engine.phases
    report.seconds = time.perf_counter() - start
    return report


# --- the table ---
def format_report(r: Report) -> str:
    lines = [f"torch:  {r.names[0]}", f"paddle: {r.names[1]}", "", "correspondence (call order, type and shape; names only break ties):"]
    w = max([len(m["torch"]) + len(m["torch_type"]) + 3 for m in r.mapping] + [20])
    for m in r.mapping:
        rules = ", ".join(
            f"{pp['torch'].rsplit('.', 1)[-1]}->{pp['paddle'].rsplit('.', 1)[-1]}" + (" (transposed)" if pp["layout"] == TRANSPOSE else "")
            for pp in m["params"]
        )
        left = f"{m['torch'] or '(model)'} ({m['torch_type']})"
        right = f"{m['paddle'] or '(model)'} ({m['paddle_type']})"
        lines.append(f"  {left:<{w}} {right:<{w}} {rules}{'  TYPES DIFFER' if m.get('types_differ') else ''}")
    for side in NAMES:
        if r.unmatched.get(side):
            lines.append(f"  no counterpart in the other model ({side}): {', '.join(r.unmatched[side])}")
    if r.unmatched.get("ambiguous"):
        lines.append(f"  ambiguous: {'; '.join(r.unmatched['ambiguous'])}")
    lines += ["", f"{'phase':<9} {'mode':<5} {'dtype':<8} {'step':>5} {'tensors':>7} {'worst':<28} {'rel':>9} {'tol':>9} {'over':>4}  result"]
    for ph in r.phases:
        if ph.phase == "structure":
            continue
        lines.append(
            f"{ph.phase:<9} {ph.mode:<5} {ph.dtype:<8} {ph.steps:>5} {ph.compared:>7} {ph.worst[:28]:<28} {ph.rel:>9.1e} {ph.tol:>9.1e} {ph.over:>4}  "
            f"{'ok' if ph.passed else 'DIFFERS'}{f' ({ph.flips} flips: judged as drift)' if ph.flips else ''}"
        )
    lines.append("")
    for note in r.notes:
        lines.append(f"note: {note}")
    if r.first_difference:
        lines.append("")
        for k, f in enumerate(r.findings):
            lines += _format_finding(f, "first difference" if k == 0 else "also")
        if r.following:
            lines.append(f"  ... and {r.following} later difference{'s' if r.following != 1 else ''} that follow from it (in the JSON: --json)")
    lines.append("")
    lines.append("EQUAL in every phase" if r.equal and not r.first_difference else ("EQUAL, but for what was accepted" if r.equal else "DIFFERENT"))
    return "\n".join(lines)


def _short(at: str) -> str:
    """FILE:LINE relative to the working folder when it is inside it."""
    path, _, line = at.rpartition(":")
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return at
    return f"{rel}:{line}" if path and not rel.startswith("..") else at


def _format_finding(f: Finding, title: str) -> list[str]:
    where = f"{f.phase}, {f.mode} mode, {f.dtype}" + (f", step {f.step}" if f.step else "")
    lines = [f"{title}: {where}: cause {f.cause}{' (accepted)' if f.accepted else ''}"]
    if f.torch or f.paddle:
        lines.append(f"  torch  {f.torch or '-'} {f'({f.torch_type})' if f.torch_type else ''} {_short(f.torch_at)}".rstrip())
        lines.append(f"  paddle {f.paddle or '-'} {f'({f.paddle_type})' if f.paddle_type else ''} {_short(f.paddle_at)}".rstrip())
    if f.torch_tensor or f.paddle_tensor:
        lines.append(f"  tensor: torch {f.torch_tensor or '-'}, paddle {f.paddle_tensor or '-'}")
    if np.isfinite(f.rel):
        lines.append(f"  {f.what}: max abs {f.abs:.3g}, max rel {f.rel:.3g}, {100 * f.share:.1f}% of the elements over the tolerance {f.tol:.1e}")
    if f.detail:
        lines.append(f"  {f.detail}")
    if f.convention:
        lines.append(f"  known convention: {f.convention}: {f.explanation}")
        lines.append(f"  fix: {f.fix}")
    return lines


# --- the command line ---
def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not C,H,W (comma-separated sizes, e.g. 1,28,28)") from None
    if not dims or any(d < 1 or d > 4096 for d in dims) or np.prod(dims) > 1 << 24:
        raise argparse.ArgumentTypeError(f"{text!r}: sizes from 1 to 4096, at most 16M values an example")
    return dims


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1 or v > 100_000:
        raise argparse.ArgumentTypeError(f"{text} is not from 1 to 100000")
    return v


def parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m parity.diff", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("torch", metavar="TORCH", help="the torch model: FILE.py:NAME or module.path:NAME (NAME called with no arguments)")
    ap.add_argument("paddle", metavar="PADDLE", help="the paddle model, the same way")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", type=_shape, metavar="C,H,W", help="random images in [0, 1] of this shape, with random labels")
    src.add_argument("--data", choices=["mnist", "fashion-mnist"], help="images and labels of this data set's training split (the project's readers)")
    ap.add_argument("--data-dir", default=None, help="with --data: the folder holding it; default: $LENET_DATA/<data set>")
    ap.add_argument("--batch", type=_positive, default=8, help="examples per batch (default: 8)")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the models' own initialisation (the frameworks' generators), the images, labels, masks and the target's first fill (default: 0)",
    )
    ap.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="the source model's weights (.pt, .pdparams or .safetensors, read by the safe loaders); default: its own initialisation",
    )
    ap.add_argument("--from", dest="source", choices=list(NAMES), default="torch", help="whose weights are copied into the other (default: torch)")
    ap.add_argument(
        "--dtype", choices=["both", *DTYPES], default="both", help="float64 is the proof; float32 is judged against measured rounding (default: both)"
    )
    ap.add_argument("--train", type=_positive, default=0, metavar="STEPS", help="also compare STEPS optimizer steps on the same batches")
    ap.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), default="sgd", help="with --train: each framework's own, configured to the same rule (default: sgd)"
    )
    ap.add_argument("--lr", type=float, default=0.01, help="with --train: the learning rate (default: 0.01)")
    ap.add_argument("--mapping", default=None, metavar="FILE", help="use this edited correspondence (written by --write-mapping) instead of the found one")
    ap.add_argument("--write-mapping", default=None, metavar="FILE", help="write the correspondence as an editable JSON file")
    ap.add_argument(
        "--accept",
        action="append",
        default=[],
        choices=["batchnorm_biased_variance"],
        help="accept this known framework difference when the figures match its formula exactly (paddle's BatchNorm: see its fix)",
    )
    add_json_option(ap, "the report")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        inputs_for = [args.weights, args.mapping, *(spec.rpartition(":")[0] for spec in (args.torch, args.paddle) if spec.rpartition(":")[0].endswith(".py"))]
        if args.data_dir:
            inputs_for.append(args.data_dir)
        if args.write_mapping:
            check_output(args.write_mapping, "--write-mapping", inputs=inputs_for, suffixes=(".json",))
        if args.json and args.json != "-":
            check_output(args.json, "--json", inputs=inputs_for + [args.write_mapping])
        with report_to_stderr(args.json) as stdout:
            report = _run(args)
            print(report)
        if args.json:
            text = json.dumps(report.to_json(), indent=1, default=float) + "\n"
            if stdout is not None:
                stdout.write(text)
            else:
                from lenet_spec.checkpoint import atomic_write

                atomic_write(args.json, lambda tmp: Path(tmp).write_text(text))
    except (DiffError, UsageError, MappingError, CheckpointError, FrameworkMissing) as e:
        print(f"parity.diff: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"parity.diff: error: {e}", file=sys.stderr)
        return 2
    return 0 if report.equal else 1


def _run(args) -> Report:
    rng = np.random.default_rng([args.seed, 5])
    labels = None
    if args.data:
        from lenet_spec.data import DataError, find_dataset, load_split, to_model_input

        folder = find_dataset(args.data, args.data_dir, "train")
        if folder is None:
            raise DiffError(f"--data {args.data}: not found (looked in --data-dir or $LENET_DATA/{args.data}); give --data-dir FOLDER or use --input C,H,W")
        try:
            images, all_labels = load_split(folder, "train", args.data)
        except DataError as e:
            raise DiffError(str(e)) from None
        need = args.batch * max(1, args.train)
        x_all, y_all = to_model_input(images[:need], np.float64), all_labels[:need]
        inputs, labels = x_all[: args.batch], y_all[: args.batch]
        batches = [(x_all[k : k + args.batch], y_all[k : k + args.batch]) for k in range(0, need, args.batch)]
    else:
        if args.batch * int(np.prod(args.input)) > MAX_VALUES:
            raise UsageError(f"--batch {args.batch} of --input {','.join(map(str, args.input))} is over {MAX_VALUES:,} values; give a smaller --batch")
        inputs = rng.random((args.batch, *args.input))
        batches = None
    models = {}
    for side in NAMES:
        module(side, "diff").seed(args.seed)  # the models' own initialisation, the same for the same --seed
        models[side] = load_factory(getattr(args, side), side)
    if args.weights:
        _load_weights(models[args.source], args.source, args.weights)
    dtypes = DTYPES if args.dtype == "both" else (args.dtype,)
    return compare(
        models["torch"],
        models["paddle"],
        inputs,
        labels,
        source=args.source,
        dtypes=dtypes,
        train=args.train,
        optimizer=args.optimizer,
        lr=args.lr,
        batches=batches,
        mapping=args.mapping,
        write_mapping_to=args.write_mapping,
        accept=tuple(args.accept),
        seed=args.seed,
        names=(args.torch, args.paddle),
    )


def _load_weights(model, framework: str, path: str) -> None:
    """A user's weights file into the source model, read by the project's safe readers."""
    from lenet_spec.checkpoint import ANY_MODEL
    from lenet_spec.load import load_checkpoint

    ckpt = load_checkpoint(path, variant=ANY_MODEL)
    if ckpt.framework not in (None, framework):
        raise DiffError(f"--weights {path} is in {ckpt.framework}'s layout, but the source (--from) is {framework}; pass --from {ckpt.framework}")
    probe = module(framework, "diff")
    own = probe.state(model)
    state = {k: v for k, v in ckpt.state.items() if k.rsplit(".", 1)[-1] != "num_batches_tracked"}
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}")
        if extra:
            parts.append(f"not in the model {', '.join(extra[:4])}")
        if shapes:
            parts.append(f"{shapes[0]} is {tuple(state[shapes[0]].shape)} in the file but {tuple(own[shapes[0]].shape)} in the model")
        raise DiffError(f"--weights {path} does not fit the {framework} model: {'; '.join(parts)}")
    probe.load_state(model, state)


if __name__ == "__main__":
    from lenet_spec.cli import interrupts_quietly

    interrupts_quietly()
    run(main, "parity.diff")
