"""python -m parity.port: your model, in torch or paddle, becomes a spec, the other framework's plain
code and weights, and the proof that the two compute the same thing.

  python -m parity.port my_torch.py:Net --input 1,28,28 --weights trained.pt --out ported/
  python -m parity.port my_paddle.py:Net --input 1,28,28 --weights model.pdparams --out ported/

SOURCE is FILE.py:NAME or module.path:NAME, NAME a class or a function taking no arguments that
returns the model (as python -m parity.diff takes it). The model is read as a chain of ops (torch:
torch.fx; paddle: its layers' hooks and the functional calls its forward makes) and written into
OUT (`--name` net):
  net.toml                 the network in the spec's vocabulary: `--variant OUT/net.toml` in every command
  net_<framework>.py       the other framework's code: one class under the source's name and layer
                           names, and load(path=...) -> the model with the ported weights, evaluation mode
  net.pdparams | net.pt    the weights, in that framework's own format, for the generated code's load()
  net.safetensors          the same weights as a project checkpoint carrying net.toml (the spec's
                           names): evaluate, export, serve and parity.convert read it as it is
  report.txt, report.json  python -m parity.diff of the source model, as given, against the generated
                           code: both dtypes, --train optimizer steps
The files are written into a new folder beside OUT and renamed to OUT only when the proof passes; a
port that cannot be proven is left as OUT.unproven, and the status is 1 with the first difference.

Exit status: 0 ported and proven; 1 written but not proven (OUT.unproven); 2 cannot port (one line:
an op outside the spec's vocabulary with its module and line, a forward that is not a chain, a file,
an import, the weights), nothing written.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from lenet_spec import layers as L
from lenet_spec import specfile
from lenet_spec.checkpoint import CheckpointError, save_safetensors
from lenet_spec.cli import ArgumentParser, UsageError, check_output_folder, run
from lenet_spec.compare import REFERENCE_TOL, rel_diff
from lenet_spec.frameworks import NAMES, FrameworkMissing, module
from lenet_spec.mapping import convert
from lenet_spec.reference import forward as reference_forward
from lenet_spec.traced import Op, Plan, Step, Trace, TraceError
from lenet_spec.variants import DATASET_CLASSES

from . import diff

ACTIVATIONS = {"relu", "sigmoid", "tanh", "leaky_relu"}
# activations that commute with dropout (positively homogeneous): relu(m * x / (1 - p)) = m * relu(x) / (1 - p)
COMMUTE_WITH_DROPOUT = {"relu", "leaky_relu"}
TRAIN_STEPS = 3
# paddle's BatchNorm folds the batch's biased variance into its running variance, torch the unbiased
# one, and no argument of paddle's changes it: a port between them is equal but for that, which the
# proof accepts only where the figures match its formula exactly (parity.diff --accept), and reports
ACCEPTED = ("batchnorm_biased_variance",)
# input shapes whose data set the project reads: the spec's `dataset`, for --variant net.toml in the trainers
DATASETS = {(1, 28, 28): "mnist", (3, 32, 32): "cifar10"}


class PortError(Exception):
    """The model cannot be ported (exit 2): one line naming the op, its module and line, and what to do."""


# --- the plan: the trace as the lines of the generated forward ---
def _attr(path: str, taken: set[str]) -> str:
    """A module path ("features.0") as a Python attribute name ("features_0"), unique in `taken`."""
    name = re.sub(r"\W", "_", path.replace(".", "_")) or "layer"
    if name[0].isdigit():
        name = f"layer_{name}"
    if keyword.iskeyword(name) or name in ("forward", "training", "load"):
        name += "_"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _unsupported(op: Op, reason: str) -> PortError:
    return PortError(
        f"{op.describe()}: {reason}; rewrite it with layers the spec knows (docs/PORTING.md, 'Porting a model'), "
        "or port that part by hand and check it with python -m parity.diff"
    )


def plan(trace: Trace, source_framework: str, stem: str = "net") -> Plan:
    """The generated forward's lines for `trace`: each module op held under its source name (a
    parameterless module called again is called again), each functional op a call.

    Raises:
        PortError: the first op outside the vocabulary, or a module with parameters called twice.
    """
    steps: list[Step] = []
    attrs: dict[str, str] = {}  # source module path -> attribute
    taken: set[str] = set()
    for op in trace.ops:
        if op.kind == "unsupported":
            raise _unsupported(op, op.attrs.get("reason", "not in the spec's vocabulary"))
        if op.kind == "identity":
            continue
        if op.kind in ("conv", "linear") and "bias" not in op.params:
            raise _unsupported(op, "it has no bias (the spec's convolutions and dense layers have one)")
        if not op.module:
            steps.append(Step(op, None))
            continue
        if op.module in attrs:
            if op.params:
                raise _unsupported(op, "it is called twice, sharing its weights, which a chain of the spec's layers cannot hold")
            steps.append(Step(op, attrs[op.module], define=False))
            continue
        attrs[op.module] = _attr(op.module, taken)
        steps.append(Step(op, attrs[op.module]))
    if not any(s.op.params for s in steps):
        raise PortError(f"{trace.class_name} has no layer with weights that parity.port can read; nothing to port")
    return Plan(trace.class_name, Path(trace.source).name, source_framework, trace.input_shape, steps, trace.output_shape, stem)


# --- the spec ---
def assemble(p: Plan, name: str | None = None, dataset: str | None = None) -> tuple[L.Variant, dict[str, np.ndarray]]:
    """The plan as a spec (Variant) and its parameters under the spec's names and layouts, float64.

    Raises:
        PortError: an op the spec cannot hold where it stands (an activation after a layer without one, say).
    """
    layers: list[L.Layer] = []
    params: dict[str, np.ndarray] = {}
    used: set[str] = set()
    counts: dict[str, int] = {}

    def spec_name(step: Step) -> str:
        base = step.attr or step.op.kind
        counts[base] = counts.get(base, 0) + 1
        candidate = base if counts[base] == 1 and base not in used else f"{base}_{counts[base]}"
        while candidate in used:
            counts[base] += 1
            candidate = f"{base}_{counts[base]}"
        used.add(candidate)
        return candidate

    for step in p.steps:
        op, a = step.op, step.op.attrs
        if op.kind in ACTIVATIONS:
            _fold(layers, op)
            continue
        n = spec_name(step)
        if op.kind == "conv":
            extra = {"dilation": a["dilation"]} if a.get("dilation", 1) != 1 else {}
            layers.append(L.Conv(n, a["in_channels"], a["out_channels"], a["kernel"], a["stride"], a["padding"], **extra))
            params[f"{n}.weight"], params[f"{n}.bias"] = op.params["weight"], op.params["bias"]
        elif op.kind == "linear":
            layers.append(L.Dense(n, a["in_features"], a["out_features"]))
            params[f"{n}.weight"], params[f"{n}.bias"] = op.params["weight"], op.params["bias"]
        elif op.kind in ("max_pool", "avg_pool"):
            extra = {}
            if a["padding"]:
                extra = {"padding": a["padding"], "count_include_pad": a.get("count_include_pad", True)}
            layer = L.Pool(n, "max" if op.kind == "max_pool" else "avg", a["kernel"], a["stride"], **extra)
            if a.get("ceil_mode") and layer.out_shape(op.in_shape) != op.out_shape:
                raise _unsupported(op, "ceil_mode=True changes its output size here (the spec's pools floor)")
            layers.append(layer)
        elif op.kind in ("adaptive_max_pool", "adaptive_avg_pool"):
            layers.append(L.AdaptivePool(n, tuple(a["output_size"]), "max" if op.kind == "adaptive_max_pool" else "avg"))
        elif op.kind == "batchnorm":
            layers.append(L.BatchNorm(n, a["features"], eps=a["eps"], momentum=a["momentum"]))
            for local in ("weight", "bias", "running_mean", "running_var"):
                params[f"{n}.{local}"] = op.params[local]
            params[f"{n}.num_batches_tracked"] = np.array(0, np.int64)
        elif op.kind == "dropout":
            layers.append(L.Dropout(n, a["p"]))
        elif op.kind == "flatten":
            layers.append(L.Flatten(n))
        elif op.kind in ("log_softmax", "softmax"):
            if len(op.in_shape) != 1 or a.get("dim") not in (1, -1):
                raise _unsupported(op, f"{op.kind} over dim {a.get('dim')} of {op.in_shape}: the spec's is over the classes of (N, classes)")
            layers.append(getattr(L, "LogSoftmax" if op.kind == "log_softmax" else "Softmax")(n))
        elif op.kind == "subsample":
            extra = {"pooling": a["pooling"]} if a["pooling"] != "sum" else {}
            layers.append(L.Subsample(n, a["channels"], a["kernel"], activation="identity", **extra))
            params[f"{n}.coefficient"], params[f"{n}.bias"] = op.params["weight"], op.params["bias"]
        else:
            raise _unsupported(op, f"{op.kind} has no layer in the spec")
    if len(p.output_shape) != 1:
        raise PortError(f"{p.class_name} returns {p.output_shape} per example; the spec's networks end in (classes,)")
    classes_n = p.output_shape[0]
    dataset = dataset or DATASETS.get(tuple(p.input_shape), "mnist")
    classes = DATASET_CLASSES.get(dataset, ())
    if len(classes) != classes_n:
        classes = tuple(str(i) for i in range(classes_n))
    c, h, w = p.input_shape
    try:
        variant = L.Variant(
            name or p.stem,
            f"{p.class_name}, ported from {p.source or 'its ' + p.source_framework + ' code'} by parity.port",
            dataset,
            L.Input(c, h, w),
            tuple(layers),
            "fan-in-uniform",
            classes,
        )
    except ValueError as e:
        raise PortError(f"{p.class_name}: its ops do not make a spec: {e}") from None
    return variant, params


def _fold(layers: list[L.Layer], op: Op) -> None:
    """The activation `op` into the layer before it (across a flatten, and a dropout for ReLU-like ones)."""
    kind = op.kind
    if kind == "leaky_relu" and op.attrs.get("slope", L.LEAKY_RELU_SLOPE) != L.LEAKY_RELU_SLOPE:
        raise _unsupported(op, f"leaky_relu with slope {op.attrs.get('slope')} (the spec's is {L.LEAKY_RELU_SLOPE}, both frameworks' default)")
    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        if isinstance(layer, L.Flatten) or (isinstance(layer, L.Dropout) and kind in COMMUTE_WITH_DROPOUT):
            continue
        if hasattr(layer, "activation") and layer.activation == "identity":
            layers[i] = replace(layer, activation=kind)
            return
        what = f"after {layer.name} ({layer.kind}{', ' + layer.activation if getattr(layer, 'activation', 'identity') != 'identity' else ''})"
        raise _unsupported(op, f"a {kind} {what}: the spec's layers apply one activation after their own op")
    raise _unsupported(op, f"a {kind} on the input: the spec's layers apply an activation after their own op")


def checkpoint_state(variant: L.Variant, params: dict[str, np.ndarray], framework: str, dtype: str) -> dict[str, np.ndarray]:
    """The spec's parameters as the project's `framework` model holds them (lenet_spec.mapping), in
    `dtype`: the state of net.safetensors, a checkpoint every command of the project reads."""
    counters = {b.name for b in variant.buffers() if b.dtype == "int64"}
    cast = {k: np.asarray(v, np.int64 if k in counters else dtype) for k, v in params.items()}
    return convert(cast, variant, "spec", framework)


def spec_agreement(variant: L.Variant, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """How far the spec's NumPy reference (lenet_spec.reference) is from the source's output `y` on
    `x`, both float64: the spec that the other commands build is the network that was ported."""
    return rel_diff(list(reference_forward(variant, params, x).values())[-1], y)[1]


# --- the generated code ---
def generate(p: Plan, target: str) -> str:
    """The target framework's code for the plan: ruff-clean, importing only that framework."""
    cg = module(target, "codegen")
    weights = f"{p.stem}{cg.SUFFIX}"
    helpers: dict[tuple[str, str, str], None] = {}
    init, body, module_kinds, functional = [], [], set(), False
    shape = "(N, " + ", ".join(map(str, p.input_shape)) + ")"
    body.append(f"        # x: {shape}")
    for step in p.steps:
        op = step.op
        out = "(N, " + ", ".join(map(str, op.out_shape)) + ")"
        if step.attr is None:
            body.append(_wrap("        x = ", cg.call_expr(op, "x"), f"  # {out}"))
            functional = True
            continue
        if step.define:
            helper = ""
            if op.kind == "subsample":
                helper = op.type_name if op.type_name.isidentifier() and op.type_name != p.class_name else "Subsample"
                helpers[(helper, op.attrs["pooling"], op.attrs.get("pool_attr", "pool"))] = None
            init.append(_wrap(f"        self.{step.attr} = ", cg.module_expr(op, helper)))
            module_kinds.add(op.kind)
        body.append(f"        x = self.{step.attr}(x)  # {out}")
    body.append("        return x")
    loader_imports, loader = cg.loader(p.class_name, weights)
    extra = cg.extra_classes(module_kinds) + [cg.helper_class(*h) for h in helpers]
    std = sorted(loader_imports, key=lambda line: (line.startswith("from"), line.split()[1]))
    source = p.source or f"its {p.source_framework} code"
    lines = [
        f'"""{p.class_name}, ported from {source} by python -m parity.port (lenet-parity).',
        "",
        f"The network is {p.stem}.toml; load() reads the weights in {weights}.",
        "",
        "    model = load()  # evaluation mode, with the ported weights",
        '"""',
        "",
        *std,
        "",
        *cg.imports(functional),
        "",
        "",
    ]
    for cls in extra:
        lines += [cls.rstrip("\n"), "", ""]
    lines += [
        f"class {p.class_name}({cg.base_class()}):",
        "    def __init__(self):",
        "        super().__init__()",
        *init,
        "",
        "    def forward(self, x):",
        *body,
        "",
        "",
        loader.rstrip("\n"),
        "",
    ]
    return "\n".join(lines)


LINE = 88  # ruff's and black's default line length: the generated code is formatted as they format it


def _wrap(head: str, call: str, comment: str = "") -> str:
    """`head + call`, with the call's arguments on their own indented line when it is over LINE (ruff's layout)."""
    line = head + call + comment
    if len(head + call) <= LINE or "(" not in call or not call.endswith(")"):
        return line
    indent = len(head) - len(head.lstrip())
    name, args = call[: call.index("(") + 1], call[call.index("(") + 1 : -1]
    return f"{head}{name}\n{' ' * (indent + 4)}{args}\n{' ' * indent}){comment}"


# --- the command ---
def parser() -> ArgumentParser:
    ap = ArgumentParser(prog="python -m parity.port", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", metavar="SOURCE", help="your model: FILE.py:NAME or module.path:NAME (NAME called with no arguments), torch or paddle")
    ap.add_argument("--input", type=diff._shape, required=True, metavar="C,H,W", help="the shape of one input image")
    ap.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="its weights (.pt, .pdparams or .safetensors, read by the safe loaders); default: its own initialisation",
    )
    ap.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new, or empty)")
    ap.add_argument("--name", default="net", help="the files' stem and the spec's name (default: net)")
    ap.add_argument("--dataset", default=None, choices=sorted(DATASET_CLASSES), help="the spec's data set (default: mnist for 1x28x28, cifar10 for 3x32x32)")
    ap.add_argument("--train", type=int, default=TRAIN_STEPS, metavar="STEPS", help=f"optimizer steps the proof compares (default: {TRAIN_STEPS})")
    ap.add_argument("--batch", type=diff._positive, default=8, help="examples per batch of the proof (default: 8)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the proof's inputs, labels and masks, and of the model's own initialisation (default: 0)")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        return _port(args)
    except (PortError, TraceError, diff.DiffError, UsageError, CheckpointError, FrameworkMissing, specfile.SpecError) as e:
        print(f"parity.port: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"parity.port: error: {e}", file=sys.stderr)
        return 2


def _source_framework(model) -> str:
    for fw in NAMES:
        if module(fw, "diff").is_model(model):
            return fw
    raise diff.DiffError(f"SOURCE is a {type(model).__name__}, neither a torch nor a paddle model")


def _port(args) -> int:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        raise UsageError(f"--name {args.name!r}: give a plain file stem (letters, digits, _)")
    if len(args.input) != 3:
        raise UsageError("--input: give C,H,W (one image's channels, height and width)")
    out = check_output_folder(args.out, "--out")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {args.out} is not empty; an output never replaces earlier files: choose a new folder")
    src_file = args.source.rpartition(":")[0]
    for given in (args.weights, src_file if src_file.endswith(".py") else None):
        if given and out.exists() and Path(given).resolve().is_relative_to(out.resolve()):
            raise UsageError(f"--out {args.out} holds the input {given}; choose a new folder")
    for fw in NAMES:
        module(fw, "diff").seed(args.seed)
    model = diff.load_factory(args.source, "source")
    framework = _source_framework(model)
    target = next(n for n in NAMES if n != framework)
    if args.weights:
        diff._load_weights(model, framework, args.weights)
    trace = module(framework, "importer").trace(model, args.input)
    p = plan(trace, framework, args.name)
    variant, spec_params = assemble(p, args.name, args.dataset)
    dtype = module(framework, "diff").dtype_of(model)
    cg = module(target, "codegen")

    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent if out.parent.exists() else None))
    try:
        files = {
            "spec": stage / f"{args.name}.toml",
            "code": stage / f"{args.name}_{target}.py",
            "weights": stage / f"{args.name}{cg.SUFFIX}",
            "safetensors": stage / f"{args.name}.safetensors",
        }
        specfile.save(files["spec"], variant)
        files["code"].write_text(generate(p, target))
        arrays = cg.state(p, dtype)
        cg.save(files["weights"], arrays)
        save_safetensors(files["safetensors"], target, variant, checkpoint_state(variant, spec_params, target, dtype))

        generated = diff.load_factory(f"{files['code']}:load", "generated")
        rng = np.random.default_rng([args.seed, 7])
        x = rng.random((args.batch, *args.input))
        models = {framework: model, target: generated}
        reference_gap = spec_agreement(variant, spec_params, x, _eval_output(model, framework, x))
        report = diff.compare(
            models["torch"],
            models["paddle"],
            x,
            source=framework,
            copy_weights=False,
            train=args.train,
            seed=args.seed,
            accept=ACCEPTED,
            names=(args.source, str(out / files["code"].name)) if framework == "torch" else (str(out / files["code"].name), args.source),
        )
        proven = report.equal and reference_gap <= REFERENCE_TOL["float64"]
        spec_line = f"spec: {args.name}.toml's NumPy reference against the source, float64: {reference_gap:.2g} (tolerance {REFERENCE_TOL['float64']:g})"
        files_report = {"txt": stage / "report.txt", "json": stage / "report.json"}
        files_report["txt"].write_text(f"python -m parity.port {' '.join(args.argv)}\n{spec_line}\n\n{report}\n")
        doc = {
            "source": args.source,
            "source_framework": framework,
            "target_framework": target,
            "proven": proven,
            "spec_reference_gap": reference_gap,
            "files": sorted(f.name for f in stage.iterdir()),
            "diff": report.to_json(),
        }
        files_report["json"].write_text(json.dumps(doc, indent=1, default=float) + "\n")
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    final = out if proven else _free(out.with_name(out.name + ".unproven"))
    for f in files_report.values():  # the reports name the generated file where it will be
        f.write_text(f.read_text().replace(str(stage), str(final)))
    if final.exists():
        final.rmdir()  # empty, checked above
    stage.rename(final)
    mask = os.umask(0)
    os.umask(mask)
    final.chmod(0o777 & ~mask)  # mkdtemp made it private
    print(f"{trace.class_name} ({framework}) -> {final / files['code'].name} ({target}): " + ("proven equal" if proven else "NOT proven"))
    print((final / "report.txt").read_text().split("\n", 1)[1].rstrip("\n"))
    if not proven:
        f = report.first_difference
        first = (
            f"{f.phase} {f.mode} {f.dtype}, {f.torch or f.paddle}: {f.cause} {f.rel:.2g}"
            if f
            else ("the spec's reference" if report.equal else "the structure")
        )
        print(f"parity.port: the port is not proven ({first}); its files are in {final}", file=sys.stderr)
        return 1
    return 0


def _free(path: Path) -> Path:
    """`path`, or path.2, path.3, ... the first that does not exist: an unproven port never replaces files."""
    candidate, n = path, 2
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def _eval_output(model, framework: str, x: np.ndarray) -> np.ndarray:
    """The source model's evaluation-mode output on `x` in float64, the model given back as it was."""
    probe = module(framework, "diff")
    kept = (probe.dtype_of(model), model.training)
    probe.cast(model, "float64")
    try:
        r = diff._Side(framework, model).run(x, train=False)
        return np.asarray(r.output, np.float64)
    finally:
        probe.cast(model, kept[0])
        probe.set_mode(model, kept[1])


if __name__ == "__main__":
    from lenet_spec.cli import interrupts_quietly

    interrupts_quietly()
    run(main, "parity.port")
