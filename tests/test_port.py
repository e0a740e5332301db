"""python -m parity.port: a user's model becomes a spec, the other framework's code and weights, and
the proof (parity.diff of the source as given against the generated code). The seeds' published
code and pytorch/examples' Net are ported here; so are the corpus's right ports; the generated files
are checked to be ruff-clean, to run with only their framework and NumPy, and to round-trip; bad
input gets one line and exit 2 with nothing left under the final names."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lenet_spec import specfile
from parity import port

pytestmark = pytest.mark.cross
torch = pytest.importorskip("torch")
paddle = pytest.importorskip("paddle")

TESTS = Path(__file__).parent
PORTS = TESTS / "ports"
FIXTURES = TESTS / "port_fixtures"


def run_port(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = port.main(args)
        except SystemExit as e:  # argparse's own refusals
            status = e.code
    return status, out.getvalue(), err.getvalue()


def leftovers(folder: Path) -> list[str]:
    """Staging folders a port left beside its --out."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def ported(tmp_path: Path, source: str, shape: str, *extra: str, name: str = "out") -> tuple[Path, dict, str]:
    out = tmp_path / name
    status, stdout, err = run_port([source, "--input", shape, "--out", str(out), *extra])
    assert (status, err) == (0, ""), stdout + err
    assert leftovers(tmp_path) == []
    return out, json.loads((out / "report.json").read_text()), stdout


TORCH_SOURCES = [
    # (source, input, what it exercises)
    (f"{FIXTURES}/seed000_torch.py:LeNet", "1,28,28", "seed 000 as published: Caffe's LeNet, AdaptiveMaxPool2d, z.view(-1, 800)"),
    (f"{FIXTURES}/seed002_torch.py:Net", "3,32,32", "seed 002 as published: F.relu, one pool module called twice, x.view(-1, 400)"),
    (f"{FIXTURES}/seed003_torch.py:MyLeNet5", "1,28,28", "seed 003 as published: one Sigmoid module called twice, AvgPool2d, nn.Flatten"),
    (f"{PORTS}/seed004_torch.py:LeNet", "1,32,32", "seed 004 as published: its DownSample recognised as the spec's subsampling"),
    (f"{FIXTURES}/examples_mnist_torch.py:Net", "1,28,28", "pytorch/examples' Net: dropout, F.log_softmax"),
    (f"{PORTS}/right_functional_torch.py:Net", "1,28,28", "F.relu, F.max_pool2d, torch.flatten in forward"),
    (f"{PORTS}/right_relu_torch.py:Net", "1,28,28", "ReLU LeNet-5 with modules"),
    (f"{PORTS}/right_dropout_torch.py:Net", "1,28,28", "dropout layers: masks shared by the proof"),
    (f"{PORTS}/right_bn_dropout_torch.py:Net", "3,32,32", "BatchNorm 2-D and 1-D, dropout, Sequential blocks"),
]


@pytest.mark.parametrize("source,shape,why", TORCH_SOURCES, ids=[Path(s.split(":")[0]).stem for s, _, _ in TORCH_SOURCES])
def test_a_torch_model_is_ported_to_paddle_and_proven(source, shape, why, tmp_path):
    out, report, stdout = ported(tmp_path, source, shape)
    assert report["proven"] and report["diff"]["equal"]
    assert report["source_framework"] == "torch" and report["target_framework"] == "paddle"
    assert sorted(p.name for p in out.iterdir()) == ["net.pdparams", "net.safetensors", "net.toml", "net_paddle.py", "report.json", "report.txt"]
    assert {p["dtype"] for p in report["diff"]["phases"]} == {"float64", "float32"}
    assert any(p["phase"] == "train" and p["steps"] == "1-3" for p in report["diff"]["phases"])  # --train 3 by default
    assert report["spec_reference_gap"] <= 1e-12
    assert "proven equal" in stdout
    specfile.load(out / "net.toml")  # a valid spec file


PADDLE_SOURCES = [
    (f"{PORTS}/seed004_paddle.py:LeNet", "1,32,32", "seed 004's paddle half as published"),
    (f"{PORTS}/right_functional_paddle.py:Net", "1,28,28", "F.relu, F.max_pool2d, paddle.flatten in forward"),
    (f"{PORTS}/right_dropout_paddle.py:Net", "1,28,28", "dropout layers"),
    (f"{PORTS}/right_bn_dropout_paddle.py:Net", "3,32,32", "BatchNorm2D and 1D: torch's unbiased running variance, accepted by its formula"),
]


@pytest.mark.parametrize("source,shape,why", PADDLE_SOURCES, ids=[Path(s.split(":")[0]).stem for s, _, _ in PADDLE_SOURCES])
def test_a_paddle_model_is_ported_to_torch_and_proven(source, shape, why, tmp_path):
    out, report, _ = ported(tmp_path, source, shape)
    assert report["proven"] and report["diff"]["equal"]
    assert (report["source_framework"], report["target_framework"]) == ("paddle", "torch")
    assert sorted(p.name for p in out.iterdir()) == ["net.pt", "net.safetensors", "net.toml", "net_torch.py", "report.json", "report.txt"]
    assert report["spec_reference_gap"] <= 1e-12
    accepted = [f for f in [report["diff"]["first_difference"], *report["diff"]["findings"]] if f]
    assert all(f["accepted"] and f["convention"] in ("batchnorm_biased_variance", "paddle_float32_pool_scale") for f in accepted)
    assert bool(accepted) == ("bn" in source)  # only the BatchNorm pair needs the accepted convention


def test_seed004_downsample_is_the_specs_subsampling(tmp_path):
    """Seed 004's DownSample (an AvgPool2d, then weight[i] and bias[i] map by map) is LeNet-5's
    trainable subsampling by the window's mean: the spec says so, and the generated class keeps its
    name, its pool's name and its parameters' names."""
    out, _, _ = ported(tmp_path, f"{PORTS}/seed004_torch.py:LeNet", "1,32,32")
    v = specfile.load(out / "net.toml")
    subs = [layer for layer in v.layers if layer.kind == "subsample"]
    assert [(s.name, s.channels, s.kernel, s.pooling, s.activation) for s in subs] == [
        ("con_sam_2", 6, 2, "avg", "tanh"),
        ("con_sam_6", 16, 2, "avg", "tanh"),
    ]
    code = (out / "net_paddle.py").read_text()
    assert "class DownSample(nn.Layer):" in code and "self.sum_4 = nn.AvgPool2D(kernel_size=kernel, stride=kernel)" in code


@pytest.mark.parametrize("source,shape", [(f"{PORTS}/seed004_torch.py:LeNet", "1,32,32"), (f"{FIXTURES}/examples_mnist_torch.py:Net", "1,28,28")])
def test_porting_the_generated_code_back_gives_the_same_spec(source, shape, tmp_path):
    there, _, _ = ported(tmp_path, source, shape, name="there")
    back, report, _ = ported(tmp_path, f"{there}/net_paddle.py:load", shape, name="back")
    first, second = specfile.load(there / "net.toml"), specfile.load(back / "net.toml")
    assert second.layers == first.layers and second.input == first.input and second.classes == first.classes
    assert report["proven"]
    run_standalone(back / "net_torch.py", shape, "torch")  # and the torch file stands alone too


def test_the_proof_compares_the_source_as_given_with_the_generated_file(tmp_path):
    """The report names the user's model and the generated file, not the project's builders; and the
    generated weights are the source's (after --weights), not an initialisation."""
    src = f"{PORTS}/right_relu_torch.py:Net"
    from parity.diff import load_factory

    model = load_factory(src, "torch")
    weights = tmp_path / "trained.pt"
    torch.manual_seed(5)
    trained = {k: torch.randn_like(v) * 0.1 for k, v in model.state_dict().items()}
    torch.save(trained, weights)
    out, report, _ = ported(tmp_path, src, "1,28,28", "--weights", str(weights))
    assert report["diff"]["models"] == {"torch": src, "paddle": str(out / "net_paddle.py")}
    arrays = paddle.load(str(out / "net.pdparams"))  # our own file, written by the test's port
    assert np.array_equal(arrays["classifier_0.weight"].numpy(), trained["classifier.0.weight"].numpy().T)  # Linear: (in, out) in paddle
    assert np.array_equal(arrays["features_0.weight"].numpy(), trained["features.0.weight"].numpy())


def test_the_generated_code_is_ruff_clean(tmp_path):
    out, _, _ = ported(tmp_path, f"{PORTS}/right_bn_dropout_torch.py:Net", "3,32,32")
    code = out / "net_paddle.py"
    for args in (["check", "--isolated", "--select", "E,F,I,W"], ["format", "--isolated", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, str(code)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


BLOCKER = textwrap.dedent(
    """
    import sys, runpy
    import numpy as np
    import FRAMEWORK  # noqa: F401  (the framework's own imports are its business)
    FORBIDDEN = {"lenet_spec", "lenet_torch", "lenet_paddle", "lenet_train", "parity", "export", "benchmarks", OTHER}
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in FORBIDDEN:
                raise ImportError(f"the generated file imported {name}")
    sys.meta_path.insert(0, Block())
    for name in list(sys.modules):
        if name.split(".")[0] in FORBIDDEN:
            del sys.modules[name]
    module = runpy.run_path(sys.argv[1])
    model = module["load"]()
    x = np.random.default_rng(0).random((2, *map(int, sys.argv[2].split(",")))).astype("float32")
    print(float(abs(np.asarray(model(TENSOR(x)).detach().numpy())).sum()))
    """
)


def _names(node) -> list[str]:
    return [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]


def run_standalone(code: Path, shape: str, framework: str) -> float:
    other = {"torch": "paddle", "paddle": "torch"}[framework]
    tensor = "__import__('torch').from_numpy" if framework == "torch" else "__import__('paddle').to_tensor"
    script = BLOCKER.replace("OTHER", repr(other)).replace("TENSOR", tensor).replace("FRAMEWORK", framework)
    imported = {n.split(".")[0] for node in ast.walk(ast.parse(code.read_text())) if isinstance(node, (ast.Import, ast.ImportFrom)) for n in _names(node)}
    assert imported <= {framework, "numpy", "pickle", "pathlib"}, imported
    r = subprocess.run([sys.executable, "-I", "-c", script, str(code), shape], capture_output=True, text=True, cwd=code.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    return float(r.stdout.strip().splitlines()[-1])


def test_the_generated_paddle_file_runs_with_only_paddle_and_numpy(tmp_path):
    out, _, _ = ported(tmp_path, f"{PORTS}/right_functional_torch.py:Net", "1,28,28")
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)  # load() finds its weights beside the file, wherever it is
    total = run_standalone(moved / "net_paddle.py", "1,28,28", "paddle")
    assert np.isfinite(total) and total > 0


def test_the_generated_loader_refuses_a_pickle_that_runs_code(tmp_path):
    out, _, _ = ported(tmp_path, f"{PORTS}/right_functional_torch.py:Net", "1,28,28")
    import pickle
    import runpy

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    bad = tmp_path / "evil.pdparams"
    bad.write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    module = runpy.run_path(str(out / "net_paddle.py"))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print is not an array"):
        module["load"](bad)


# --- bad input: one line, exit 2, nothing written ---
BAD_MODELS = {
    "control_flow": (
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                x = torch.flatten(x, 1)
                if x.sum() > 0:
                    x = x * 2
                return self.fc(x)
        """,
        "1,2,2",
        "torch.fx cannot trace Net.forward",
    ),
    "gelu": (
        """
        import torch
        import torch.nn.functional as F
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 2, 3)
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                x = F.gelu(self.conv(x))
                return self.fc(torch.flatten(x, 1))
        """,
        "1,4,4",
        "gelu at model.py:12: gelu is not in the spec's vocabulary; rewrite it with layers the spec knows",
    ),
    "residual": (
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 1, 3, padding=1)
                self.fc = nn.Linear(16, 2)

            def forward(self, x):
                x = x + self.conv(x)
                return self.fc(torch.flatten(x, 1))
        """,
        "1,4,4",
        "Net.forward is not a chain of layers: add at model.py:11 reads x, conv",
    ),
    "shared_weights": (
        """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)

            def forward(self, x):
                x = torch.flatten(x, 1)
                return self.fc(self.fc(x))
        """,
        "1,2,2",
        "fc (Linear) at model.py:11: it is called twice, sharing its weights",
    ),
    "own_module": (
        """
        import torch
        from torch import nn

        class Scale(nn.Module):
            def __init__(self):
                super().__init__()
                self.s = nn.Parameter(torch.ones(1))

            def forward(self, x):
                return x * self.s

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = Scale()
                self.fc = nn.Linear(4, 2)

            def forward(self, x):
                return self.fc(torch.flatten(self.scale(x), 1))
        """,
        "1,2,2",
        "scale (Scale) at model.py:19: a module of its own (Scale) that the spec's vocabulary has no layer for",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_MODELS))
def test_a_model_that_cannot_be_ported_gets_one_line_and_exit_2(name, tmp_path):
    text, shape, expected = BAD_MODELS[name]
    (tmp_path / "model.py").write_text(textwrap.dedent(text).lstrip("\n"))
    status, out, err = run_port([f"{tmp_path}/model.py:Net", "--input", shape, "--out", str(tmp_path / "out")])
    assert status == 2, out + err
    assert err.startswith("parity.port: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]  # nothing written, nothing left


def test_a_paddle_layer_outside_the_vocabulary_gets_one_line_and_exit_2(tmp_path):
    (tmp_path / "model.py").write_text(
        textwrap.dedent(
            """
            import paddle
            from paddle import nn

            class Net(nn.Layer):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2D(1, 2, 3, bias_attr=False)
                    self.fc = nn.Linear(8, 2)

                def forward(self, x):
                    return self.fc(paddle.flatten(self.conv(x), 1))
            """
        ).lstrip("\n")
    )
    status, out, err = run_port([f"{tmp_path}/model.py:Net", "--input", "1,4,4", "--out", str(tmp_path / "out")])
    assert status == 2 and err.count("\n") == 1, out + err
    assert "conv (Conv2D) at model.py:11: it has no bias" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]


def test_bad_command_lines(tmp_path):
    src = f"{PORTS}/right_relu_torch.py:Net"
    cases = [
        ([src, "--input", "1,32,32", "--out", str(tmp_path / "o")], "on an input of shape (1, 32, 32) (--input) raised"),
        ([f"{tmp_path}/nope.py:Net", "--input", "1,28,28", "--out", str(tmp_path / "o")], "no file"),
        ([src, "--input", "1,28", "--out", str(tmp_path / "o")], "--input: give C,H,W"),
        ([src, "--input", "1,28,28", "--out", str(tmp_path / "o"), "--name", "../x"], "--name '../x'"),
    ]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    cases.append(([src, "--input", "1,28,28", "--out", str(tmp_path / "full")], "is not empty"))
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong)
    cases.append(([src, "--input", "1,28,28", "--out", str(tmp_path / "o"), "--weights", str(wrong)], "does not fit the torch model"))
    for args, expected in cases:
        status, out, err = run_port(args)
        assert status == 2 and err.count("\n") == 1 and expected in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "wrong.pt"]
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_a_port_that_is_not_proven_is_left_under_a_name_that_says_so(tmp_path, monkeypatch):
    """The generator made to write one wrong op (sigmoid for ReLU): the proof fails, exit 1, the
    files are in OUT.unproven with the report naming the first difference, OUT does not exist."""
    cg = __import__("lenet_paddle.codegen", fromlist=["call_expr"])
    real = cg.call_expr
    monkeypatch.setattr(cg, "call_expr", lambda op, x: f"F.sigmoid({x})" if op.kind == "relu" else real(op, x))
    out = tmp_path / "out"
    status, stdout, err = run_port([f"{PORTS}/right_functional_torch.py:Net", "--input", "1,28,28", "--out", str(out)])
    assert status == 1
    assert not out.exists() and (tmp_path / "out.unproven").is_dir()
    assert "not proven (forward eval float64, relu" in err or "not proven (forward eval float64" in err, err
    report = json.loads((tmp_path / "out.unproven" / "report.json").read_text())
    assert report["proven"] is False and report["diff"]["first_difference"]["cause"] == "between"
    # a second unproven run does not replace the first one's files
    status, _, _ = run_port([f"{PORTS}/right_functional_torch.py:Net", "--input", "1,28,28", "--out", str(out)])
    assert status == 1 and (tmp_path / "out.unproven.2").is_dir()
    assert leftovers(tmp_path) == []


def test_the_safetensors_is_a_project_checkpoint_of_the_spec(tmp_path):
    """net.safetensors carries net.toml: the project's loaders read it without the spec file, its
    weights run in the spec's NumPy reference as the generated code runs them, and parity.convert
    turns it into the other framework's checkpoint."""
    from lenet_spec.load import load_checkpoint
    from lenet_spec.mapping import convert
    from lenet_spec.reference import forward
    from parity.convert import main as convert_main

    out, _, _ = ported(tmp_path, f"{PORTS}/seed004_torch.py:LeNet", "1,32,32")
    ckpt = load_checkpoint(out / "net.safetensors")
    assert ckpt.framework == "paddle" and ckpt.spec == specfile.load(out / "net.toml")
    params = convert(ckpt.state, ckpt.spec, "paddle", "spec")
    x = np.random.default_rng(1).random((4, 1, 32, 32)).astype(np.float32)
    import runpy

    generated = runpy.run_path(str(out / "net_paddle.py"))["load"]()
    got = generated(paddle.to_tensor(x)).numpy()
    want = list(forward(ckpt.spec, params, x).values())[-1]
    assert np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())  # REFERENCE_TOL, float32
    assert convert_main([str(out / "net.safetensors"), str(tmp_path / "net.pt")]) == 0
    assert load_checkpoint(tmp_path / "net.pt").spec == ckpt.spec


@pytest.mark.slow
def test_the_ported_spec_trains_and_its_weights_evaluate_through_the_projects_commands(trainer, tmp_path, capsys):
    """net.toml is a network every command takes: pytorch/examples' Net, ported, trains one epoch in
    the project's paddle trainer (tiny random data); the ported weights, net.safetensors, evaluate in
    torch without the spec file."""
    out, _, _ = ported(tmp_path, f"{FIXTURES}/examples_mnist_torch.py:Net", "1,28,28")
    run = tmp_path / "run"
    assert trainer.train_main("paddle", ["--variant", str(out / "net.toml"), "--epochs", "1", "--out", str(run), "--no-progress", "--device", "cpu"]) == 0
    capsys.readouterr()
    assert trainer.evaluate_main("torch", [str(out / "net.safetensors"), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["variant"] == "net"
