"""PaDiff's side of the peer comparison: run BY THE PADIFF VENV's python, never the project's.

    /work/padiff-env/bin/python benchmarks/peers/padiff_side.py '{"torch": "/abs/t.py:Name",
        "paddle": "/abs/p.py:Name", "input": [1, 32, 32], "batch": 8, "seed": 0, "mode": "default"}'

prints one JSON line: {"verdict": "equal" | "different" | "error", "layer": the layer PaDiff blames
(its type names, "torch vs paddle", as PaDiff prints them, with the torch module's dotted path when
PaDiff's tree shows it) or null, "seconds": wall time of auto_diff, "message": PaDiff's last relevant
output line, "mode": ..., "options": the options passed}.

Modes (key "mode"; "both" runs the two in turn and prints a line for each):
  "default": padiff.auto_diff(layer, module, inp) with no options, as PaDiff's README shows it:
             atol 0, rtol 1e-7, compare_mode "mean", one forward + backward of mean(output).
  "strict":  options {"compare_mode": "strict", "single_step": True}: elementwise allclose and each
             layer fed the torch layer's output (PaDiff's documented strictest/most local mode),
             same atol/rtol defaults.

The PaDiff venv does not install the project: both model files are imported by path (parity.diff's
loader), and the framework probes (lenet_<framework>/diff.py: seeding, input tensors) from the source tree.
PaDiff 0.2.0 as published is used; see benchmarks/peers/padiff_env.sh for the venv.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import time
import traceback


def _blame(text: str):
    """(layer, last relevant line) from PaDiff's printed report."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    layer = None
    # "[AutoDiff]     Type of layer is  : Conv2d vs Conv2D"
    for ln in lines:
        m = re.search(r"Type of layer is\s*:\s*(.+)$", ln)
        if m:
            layer = m.group(1).strip()
            break
    # The tree PaDiff prints marks the culprit "<---  *** HERE ***"; with PADIFF_PATH_LOG=ON the
    # node carries its dotted path "(LeNet.con_sam.0)". Torch's tree is printed after paddle's.
    paths = []
    for ln in lines:
        if "*** HERE ***" in ln:
            m = re.search(r"\(([\w.]+)\)\s*<---", ln)
            paths.append(m.group(1) if m else ln.split("<---")[0].strip(" |+-"))
    if paths and layer is None:
        layer = paths[-1]
    elif len(paths) >= 2:
        layer = f"{layer} [torch {paths[-1]}, paddle {paths[0]}]"
    # weight / grad failures go to diff_log files; their lines name the parameter
    for ln in lines:
        m = re.search(r"Diff found in model (grad|weights)", ln)
        if m and layer is None:
            layer = f"({m.group(1)} check, see diff_log)"
    # the message: the lines that say why, joined (stage, tolerance, the worst element, PaDiff's own
    # error while pairing sublayers), else its last [AutoDiff] line
    keys = (
        "Diff found in",
        "Not equal to tolerance",
        "Max relative difference",
        "Max absolute difference",
        "Error:",
        "number of",
        "Err occurs",
        "Mismatched elements",
        "Max elementwise",
    )
    relevant = []
    for ln in lines:
        ln = ln.replace("[AutoDiff]", "").strip()
        if any(k in ln for k in keys) and ln not in relevant:
            relevant.append(ln)
    auto = [ln for ln in lines if ln.startswith("[AutoDiff]")]
    message = " | ".join(relevant) if relevant else (auto[-1] if auto else (lines[-1] if lines else ""))
    return layer, message[:1000]


def _relative(path: str) -> str:
    """PaDiff's path "LeNet.con_sam.0 [api]" as the corpus names layers, "con_sam.0 [api]" (the
    model's class name dropped); the root alone: "LeNet (the whole model)"."""
    node, sep, api = path.partition(" [")
    rel = node.partition(".")[2]
    return (rel or f"{node} (the whole model)") + (sep + api if sep else "")


def _marked_path(tree: str):
    """The dotted path of the node PaDiff marks `<---  *** HERE ***` in a printed tree, or of the
    nearest layer above it when the marked node is an API call (APIs carry no path)."""
    lines = tree.splitlines()
    for i, ln in enumerate(lines):
        if "*** HERE ***" not in ln:
            continue
        m = re.search(r"\(([\w.]+)\)\s*<---", ln)
        if m:
            return m.group(1)
        depth = ln.index("(")  # an api: walk up to the first line less indented that names a path
        for up in reversed(lines[:i]):
            if "(" in up and up.index("(") < depth:
                m = re.search(r"\(net\).*\(([\w.]+)\)", up)
                if m:
                    api = re.search(r"\(api\)\s*(\S+)", ln)
                    return m.group(1) + (f" [{api.group(1)}]" if api else "")
                depth = up.index("(")
    return None


def run_one(case: dict, mode: str) -> dict:
    import numpy as np

    import tempfile

    # PaDiff writes its logs to os.path.join(sys.path[0], "diff_log") (utils.py): keep them out of
    # the checkout, in a fresh temporary folder put first on sys.path before padiff is imported
    logdir = tempfile.mkdtemp(prefix="padiff_side_")
    # and this file's folder (benchmarks/, sys.path[0] when run as a script) holds benchmarks/padiff.py,
    # which `import padiff` would find first: take it off the path
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    sys.path.insert(0, logdir)
    os.environ.setdefault("PADIFF_PATH_LOG", "ON")  # PaDiff prints dotted paths in its trees
    os.environ.setdefault("PADIFF_CUDA_MEMORY", "OFF")  # CPU only: skip its .to(device)/empty_cache dance
    import padiff  # installs the import hook; torch and paddle are imported by it

    # the project's source tree, last on the path (PaDiff's log folder stays first): its framework
    # probes (lenet_<framework>/diff.py) seed the frameworks and make the input tensors
    sys.path.append(os.path.dirname(os.path.dirname(here)))
    from lenet_spec.frameworks import NAMES, module as framework_module
    from parity.diff import load_factory  # the same FILE.py:NAME loading as parity.diff's

    probes = {fw: framework_module(fw, "diff") for fw in NAMES}
    seed = int(case.get("seed", 0))
    for probe in probes.values():
        probe.seed(seed)
    np.random.seed(seed)
    models = {fw: load_factory(case[fw], fw) for fw in NAMES}
    x = np.random.RandomState(seed).randn(int(case.get("batch", 8)), *case["input"]).astype("float32")
    # auto_diff(layer, module, (paddle inputs, torch inputs)) calls net(**dict): each model's own first parameter name
    import inspect

    names = {fw: next(iter(inspect.signature(m.forward).parameters)) for fw, m in models.items()}
    layer, module = models["paddle"], models["torch"]
    inp = ({names["paddle"]: probes["paddle"].tensor(x)}, {names["torch"]: probes["torch"].tensor(x)})  # PaDiff's order: paddle's, then torch's

    if case.get("options") is not None:  # explicit PaDiff options (mode is then just a label)
        options = dict(case["options"])
    else:
        options = {} if mode == "default" else {"compare_mode": "strict", "single_step": True}
    buf = io.StringIO()
    t0 = time.perf_counter()
    err = None
    try:
        with contextlib.redirect_stdout(buf):
            ok = padiff.auto_diff(layer, module, inp, options=dict(options))
    except Exception as e:  # PaDiff raises when a forward throws, or on internal errors
        ok = None
        err = f"{type(e).__name__}: {e}"
        buf.write("\n" + traceback.format_exc())
    seconds = time.perf_counter() - t0
    text = buf.getvalue()
    if os.environ.get("PADIFF_SIDE_ECHO"):
        sys.stderr.write(text)
    layer_name, message = _blame(text)
    layer_types = layer_name
    paths = {}
    trees = {}
    for side in NAMES:  # large trees go to diff_log/*_struct.log instead of stdout
        path = os.path.join(logdir, "diff_log", f"{side}_struct.log")
        if os.path.exists(path):
            trees[side] = open(path).read()
    if not trees:  # small trees are printed: "Paddle Model" then "Torch Model"
        m = re.search(r"Paddle Model\n=+\n(.*?)Torch Model\n=+\n(.*?)(\n\s*\n|$)", text, re.S)
        if m:
            trees = {"paddle": m.group(1), "torch": m.group(2)}
    for side, tree in trees.items():
        p = _marked_path(tree)
        if p:
            paths[side] = p
    if "torch" in paths:
        layer_name = _relative(paths["torch"])
    for log in ("grad_diff.log", "weight_diff.log"):  # after-backward checks name a parameter path
        path = os.path.join(logdir, "diff_log", log)
        if os.path.exists(path):
            body = open(path).read()
            m = re.search(r"torch path:\n\s*(\S+)", body)
            if m and (layer_name is None or layer_name.startswith("(")):
                layer_name = _relative(m.group(1))
            text += "\n" + body
    if ok is True:
        verdict, layer_name = "equal", None
    elif ok is False:
        verdict = "different"
        if "Assign weight Failed" in text:  # PaDiff could not pair/copy the weights: it did not compare
            verdict = "error"
    else:
        verdict = "error"
        body = [ln.strip() for ln in (err or message).splitlines() if ln.strip()]
        message = " | ".join(body[:6])[:1000]  # "Error occured between: paddle ... torch ... Shape of ..."
        m = re.search(r"torch: .*\n\s*([\w.]+)\n", err or "")
        if m:  # the torch parameter PaDiff could not pair, e.g. Net.fc1.weight
            layer_name = _relative(m.group(1))
    if verdict == "error" and "Assign weight Failed" in text:
        i = text.find("Error occured between")  # PaDiff's own report: the pair, then the reason
        if i >= 0:
            body = [ln.strip() for ln in text[i:].splitlines() if ln.strip()][:6]
            message = " | ".join(body)[:1000]
            m = re.search(r"torch: .*\n\s*([\w.]+)\n", text[i:])
            if m:
                layer_name = _relative(m.group(1))
        else:
            msg = [ln.strip() for ln in text.splitlines() if "Error" in ln or "number of sublayers" in ln]
            message = msg[0] if msg else message
    return {
        "verdict": verdict,
        "layer": layer_name,
        "seconds": round(seconds, 3),
        "message": message,
        "mode": mode,
        "options": options,
        "log": logdir,
        "layer_types": layer_types,
        "paddle_layer": _relative(paths["paddle"]) if "paddle" in paths else None,
    }


def main(argv: list[str]) -> int:
    case = json.loads(argv[1])
    mode = case.get("mode", "default")
    if mode == "both":  # PaDiff keeps global state (options, hooks): one process per mode
        import subprocess

        for m in ("default", "strict"):
            subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps({**case, "mode": m})])
        return 0
    for m in [mode]:
        try:
            row = run_one(case, m)
        except Exception as e:  # a model that does not build or import
            row = {"verdict": "error", "layer": None, "seconds": 0.0, "message": f"{type(e).__name__}: {e}"[:500], "mode": m, "options": None}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
