"""python -m parity.diff on hand ports: the corpus (tests/ports/corpus.py: right ports, one wrong
port per known convention, and other mistakes), seed 004 checked by hand, the project's seven
variants against parity.check's figures, the mapping file, the Python API, and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from parity import diff
from parity.diff import compare, load_factory

sys.path.insert(0, str(Path(__file__).parent / "ports"))
from corpus import CASES  # noqa: E402

pytestmark = pytest.mark.cross
torch = pytest.importorskip("torch")
paddle = pytest.importorskip("paddle")


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = diff.main(args)
        except SystemExit as e:  # argparse's own refusals
            status = e.code
    return status, out.getvalue(), err.getvalue()


def case_args(case, tmp_path: Path, *extra: str) -> list[str]:
    args = [case.spec("torch"), case.spec("paddle"), "--input", ",".join(map(str, case.input)), "--json", str(tmp_path / "r.json"), *extra]
    if case.train:
        args += ["--train", str(case.train), "--optimizer", case.optimizer]
    return args


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_corpus_verdict_layer_phase_and_cause(case, tmp_path):
    """Every hand port of the corpus: a right one is equal in every phase (exit 0); a wrong one
    exits 1 naming the first difference as the corpus expects it (measured by hand)."""
    status, out, err = run_cli(case_args(case, tmp_path))
    report = json.loads((tmp_path / "r.json").read_text())
    assert err == ""
    assert set(report) >= {"equal", "first_difference", "mapping", "phases"}
    if case.expect is None:
        assert (status, report["equal"]) == (0, True), out
        accepted = [f for f in [report["first_difference"], *report["findings"]] if f]
        assert all(f["accepted"] and f["convention"] == "paddle_float32_pool_scale" for f in accepted)  # a framework's rounding, said
        assert ("EQUAL in every phase" if not accepted else "EQUAL, but for what was accepted") in out
        assert {p["dtype"] for p in report["phases"]} == {"float64", "float32"}
        return
    first = report["first_difference"]
    got = {k: first[k] for k in ("phase", "mode", "torch", "paddle", "cause", "convention")}
    assert got == {"phase": case.expect.phase, "mode": case.expect.mode, "torch": case.expect.torch, "paddle": case.expect.paddle,
                   "cause": case.expect.cause, "convention": case.expect.convention}, out  # fmt: skip
    assert (status, report["equal"]) == (1, False)
    assert set(first) >= {"phase", "mode", "dtype", "step", "torch", "paddle", "cause", "rel", "convention"}
    assert "DIFFERENT" in out and "first difference" in out
    if case.expect.convention:
        assert "fix: " in out
    if case.expect.cause == "raised":
        assert "raised on input (8, 400)" in out


def test_the_right_ports_are_paired_by_call_order_not_definition_order(tmp_path):
    """right_order defines its two same-shape convs in another order on each side: the pairing
    follows the calls (PaDiff's definition order copies torch's conv_a into paddle's conv_b)."""
    case = next(c for c in CASES if c.name == "right_order")
    status, out, _ = run_cli(case_args(case, tmp_path, "--dtype", "float64"))
    rows = json.loads((tmp_path / "r.json").read_text())["mapping"]
    assert status == 0
    assert {(r["torch"], r["paddle"]) for r in rows if r["torch"].startswith("conv_")} == {("conv_a", "conv_a"), ("conv_b", "conv_b")}


def _seed004():
    case = CASES[0]
    return load_factory(case.spec("torch"), "torch"), load_factory(case.spec("paddle"), "paddle")


def test_seed_004_is_a_right_port_checked_by_hand():
    """Seed 004's two LeNets as published: parity.diff calls them equal; checked here without
    it: the torch weights copied by hand (Linear transposed), both in float64, every layer's
    output compared with forward hooks, and the logits to 1e-13."""
    t, p = _seed004()
    report = compare(t, p, np.random.default_rng(0).random((8, 1, 32, 32)), train=2, optimizer="adam", lr=1e-3)
    assert report.equal, report
    t, p = _seed004()
    t.double()
    p.to(dtype="float64")
    state = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    p.set_state_dict({k: (state[k].T if k.startswith("fc.") and k.endswith("weight") else state[k]) for k in p.state_dict()})
    x = np.random.default_rng(1).random((4, 1, 32, 32))
    t.eval(), p.eval()
    a = t(torch.from_numpy(x)).detach().numpy()
    b = p(paddle.to_tensor(x)).numpy()
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-13
    # and the tool's figure is that one, not a stand-in
    assert 0 < report.phases[1].rel < 1e-13


def test_seed_004_with_a_mistake_in_its_subsampling_is_named(tmp_path):
    """The paddle half with its DownSample's bias left out: the first difference is that layer,
    in evaluation mode, float64, cause layer (paddle's DownSample alone on torch's input differs)."""
    src = Path(CASES[0].spec("paddle").split(":")[0]).read_text(encoding="utf-8")
    broken = src.replace("feature[:, i] * self.weight[i] + self.bias[i]", "feature[:, i] * self.weight[i]")
    assert broken != src
    (tmp_path / "p.py").write_text(broken, encoding="utf-8")
    t = load_factory(CASES[0].spec("torch"), "torch")
    p = load_factory(f"{tmp_path / 'p.py'}:LeNet", "paddle")
    f = compare(t, p, np.random.default_rng(0).random((8, 1, 32, 32))).first_difference
    assert (f.phase, f.mode, f.dtype, f.torch, f.paddle, f.cause) == ("forward", "eval", "float64", "con_sam.2", "con_sam.2", "layer")
    assert f.paddle_at.endswith("p.py:38") or "p.py:" in f.paddle_at  # where the user's code calls it (its nn.Sequential: the model's forward)


@pytest.mark.parametrize("variant", ["lenet5", "lenet5-1998", "d2l", "lenet-caffe", "cifar-net", "lenet5-bn", "lenet-caffe-dropout"])
def test_the_projects_own_variants_are_equal_with_parity_checks_figures(variant):
    """lenet_torch's model against lenet_paddle's: equal in every phase, two training steps
    included; their float64 layer figures agree with parity.check's on the same images (both
    rounding, within 10x of each other and under its tolerance)."""
    from lenet_paddle.model import build as paddle_build
    from lenet_spec import get_variant
    from lenet_spec.compare import LAYER_TOL, Worst
    from lenet_torch.model import build as torch_build
    from parity.cases import run_case  # noqa: F401  (parity.check's case, below through the bridges)

    spec = get_variant(variant)
    x = np.random.default_rng(0).random((16, *spec.input.shape))
    report = compare(torch_build(variant, seed=1), paddle_build(variant, seed=2), x, train=2)
    assert report.equal, report
    forward64 = next(p for p in report.phases if (p.phase, p.mode, p.dtype) == ("forward", "eval", "float64"))
    # parity.check's own figure: its bridges, the same weights, the same images
    from lenet_paddle import bridge as pb
    from lenet_torch import bridge as tb
    from lenet_spec.mapping import convert

    t = torch_build(variant, seed=1, dtype="float64")
    p = paddle_build(variant, seed=2, dtype="float64")
    pb.load_state_numpy(p, convert(tb.state_numpy(t), variant, "torch", "paddle"))
    worst = Worst()
    a, b = tb.forward_numpy(t, x), pb.forward_numpy(p, x)
    for name in a:
        worst.add(name, a[name], b[name])
    assert forward64.rel <= LAYER_TOL["float64"] and worst.rel <= LAYER_TOL["float64"]
    assert max(forward64.rel, worst.rel) <= 10 * max(min(forward64.rel, worst.rel), 1e-17)


def test_the_mapping_file_is_written_edited_and_applied(tmp_path):
    """--write-mapping writes the correspondence; given back unchanged it gives the same verdict;
    edited so that a square Linear's weight is copied untransposed, the first difference is that
    Linear, with the known convention linear_not_transposed."""
    (tmp_path / "t.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        class Net(nn.Sequential):
            def __init__(self):
                super().__init__(nn.Flatten(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    """))  # fmt: skip
    (tmp_path / "p.py").write_text(textwrap.dedent("""
        import paddle.nn as nn
        class Net(nn.Sequential):
            def __init__(self):
                super().__init__(nn.Flatten(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))
    """))  # fmt: skip
    base = [f"{tmp_path / 't.py'}:Net", f"{tmp_path / 'p.py'}:Net", "--input", "1,4,4", "--dtype", "float64"]
    status, _, _ = run_cli([*base, "--write-mapping", str(tmp_path / "m.json")])
    doc = json.loads((tmp_path / "m.json").read_text())
    assert status == 0 and [r["torch"] for r in doc["units"]] == ["0", "1", "2", "3"]
    assert run_cli([*base, "--mapping", str(tmp_path / "m.json")])[0] == 0
    for row in doc["units"]:
        for pp in row["params"]:
            if pp["torch"] == "1.weight":
                pp["layout"] = "same"
    (tmp_path / "m.json").write_text(json.dumps(doc))
    status, out, _ = run_cli([*base, "--mapping", str(tmp_path / "m.json"), "--json", str(tmp_path / "r.json")])
    first = json.loads((tmp_path / "r.json").read_text())["first_difference"]
    assert status == 1 and (first["torch"], first["cause"], first["convention"]) == ("1", "layer", "linear_not_transposed"), out
    # a mapping naming what the model does not have: one line, exit 2
    doc["units"][1]["paddle"] = "nine"
    (tmp_path / "m.json").write_text(json.dumps(doc))
    status, out, err = run_cli([*base, "--mapping", str(tmp_path / "m.json")])
    assert status == 2 and "units[1]: the paddle model has no unit 'nine'" in err and err.count("\n") == 1


def test_the_api_compares_models_as_given():
    """parity.diff.compare with copy_weights=False: the user's own weight conversion judged. A
    square Linear converted without its transpose is named, with the fix."""
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    p = paddle.nn.Sequential(paddle.nn.Linear(8, 8), paddle.nn.ReLU(), paddle.nn.Linear(8, 3))
    state = {k: v.detach().numpy() for k, v in t.state_dict().items()}
    p.set_state_dict({"0.weight": state["0.weight"], "0.bias": state["0.bias"], "2.weight": state["2.weight"].T, "2.bias": state["2.bias"]})
    report = compare(t, p, np.random.default_rng(0).random((4, 8)), copy_weights=False)
    assert not report.equal
    f = report.first_difference
    assert (f.torch, f.cause, f.convention) == ("0", "layer", "linear_not_transposed")
    assert "weight.T" in f.fix
    assert "first difference" in str(report) and "DIFFERENT" in str(report)
    p.set_state_dict({"0.weight": state["0.weight"].T, "0.bias": state["0.bias"], "2.weight": state["2.weight"].T, "2.bias": state["2.bias"]})
    assert compare(t, p, np.random.default_rng(0).random((4, 8)), copy_weights=False).equal


def test_a_float32_defect_that_float64_cannot_see_is_judged_against_the_measured_floor(tmp_path):
    """A paddle port that rounds to float16 in float32 only (a mixed-precision leftover): float64
    is equal, float32's difference is far over the floor both frameworks' own rounding sets."""
    (tmp_path / "t.py").write_text("import torch.nn as nn\nclass Net(nn.Sequential):\n    def __init__(self):\n"
                                   "        super().__init__(nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))\n")  # fmt: skip
    (tmp_path / "p.py").write_text(textwrap.dedent("""
        import paddle, paddle.nn as nn
        class Net(nn.Layer):
            def __init__(self):
                super().__init__()
                self.a, self.act, self.b = nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10)
            def forward(self, x):
                h = self.act(self.a(x))
                if h.dtype == paddle.float32:
                    h = h.astype("float16").astype("float32")
                return self.b(h)
    """))  # fmt: skip
    status, out, _ = run_cli([f"{tmp_path / 't.py'}:Net", f"{tmp_path / 'p.py'}:Net", "--input", "32", "--json", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    first = report["first_difference"]
    assert status == 1 and (first["dtype"], first["torch"], first["cause"]) == ("float32", "2", "between"), out
    assert all(p["passed"] for p in report["phases"] if p["dtype"] == "float64")


def test_functional_dropout_is_named_not_ignored(tmp_path):
    """F.dropout inside forward cannot take the shared masks: named as randomness before the
    layer it reaches, with the fix."""
    (tmp_path / "t.py").write_text(textwrap.dedent("""
        import torch.nn as nn, torch.nn.functional as F
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 4)
            def forward(self, x):
                return self.b(F.dropout(self.a(x), 0.5, self.training))
    """))  # fmt: skip
    (tmp_path / "p.py").write_text(textwrap.dedent("""
        import paddle.nn as nn, paddle.nn.functional as F
        class Net(nn.Layer):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 4)
            def forward(self, x):
                return self.b(F.dropout(self.a(x), 0.5, training=self.training))
    """))  # fmt: skip
    status, out, _ = run_cli([f"{tmp_path / 't.py'}:Net", f"{tmp_path / 'p.py'}:Net", "--input", "16", "--dtype", "float64"])
    assert status == 1
    assert "randomness the shared masks do not reach, before b (Linear" in out and "nn.Dropout" in out


def test_the_biased_variance_is_accepted_only_when_asked_and_only_by_its_formula(tmp_path):
    case = next(c for c in CASES if c.name == "bn_variance")
    status, out, _ = run_cli(case_args(case, tmp_path, "--accept", "batchnorm_biased_variance"))
    assert status == 0 and "EQUAL, but for what was accepted" in out and "accepted: batchnorm_biased_variance (--accept)" in out
    wrong = next(c for c in CASES if c.name == "bn_momentum")  # a real mistake is not accepted with it
    assert run_cli(case_args(wrong, tmp_path, "--accept", "batchnorm_biased_variance"))[0] == 1


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".pdparams"])
def test_weights_from_a_file_are_the_ones_compared(tmp_path, suffix):
    """--weights: a state dict saved by torch (or paddle, with --from paddle), read by the safe
    readers, is what the source holds; a file that does not fit is one line, exit 2."""
    t, p = _seed004()
    with torch.no_grad():
        for k, v in enumerate(t.parameters()):
            v.copy_(torch.linspace(-0.3, 0.3, v.numel()).reshape(v.shape) + 0.01 * k)  # values no initialisation makes
    for (name, v), (_, w) in zip(t.state_dict().items(), p.state_dict().items()):
        w.set_value(v.numpy().T if name.startswith("fc.") and name.endswith("weight") else v.numpy())
    if suffix == ".pt":
        torch.save(t.state_dict(), tmp_path / "w.pt")
        source = "torch"
    elif suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file({k: v.detach().numpy() for k, v in t.state_dict().items()}, tmp_path / "w.safetensors")
        source = "torch"
    else:
        paddle.save(p.state_dict(), str(tmp_path / "w.pdparams"))
        source = "paddle"
    case = CASES[0]
    base = [case.spec("torch"), case.spec("paddle"), "--input", "1,32,32", "--dtype", "float64", "--from", source]
    status, out, err = run_cli([*base, "--weights", str(tmp_path / f"w{suffix}")])
    assert status == 0, out + err
    # the file's values are used: the report's weights are the file's, not a fresh init (checked through the API)
    fresh = load_factory(case.spec(source), source)
    diff._load_weights(fresh, source, str(tmp_path / f"w{suffix}"))
    want = {k: v.detach().numpy() for k, v in t.state_dict().items()} if source == "torch" else {k: v.numpy() for k, v in p.state_dict().items()}
    assert all(np.array_equal(v, want[k]) for k, v in diff.module(source, "diff").state(fresh).items())
    status, _, err = run_cli([case.spec("torch"), case.spec("paddle"), "--input", "1,32,32", "--from", "torch" if source == "paddle" else "paddle",
                              "--weights", str(tmp_path / f"w{suffix}")])  # fmt: skip
    assert status == 2 and err.count("\n") == 1


@pytest.mark.parametrize(
    "torch_spec, expected",
    [
        ("missing.py:Net", "no file missing.py"),
        ("{ports}/right_relu_torch.py:Nope", "has no 'Nope' (it defines Net)"),
        ("{ports}/right_relu_torch.py", "give FILE.py:NAME or module.path:NAME"),
        ("no.such.module:Net", "no module 'no'"),
        ("{tmp}/raises.py:Net", "importing"),
        ("{tmp}/ctor.py:Net", "Net() raised TypeError"),
        ("{ports}/right_relu_paddle.py:Net", "the torch side is a paddle model, not a torch model; swap the two"),
        ("{tmp}/pair.py:Net", "the torch model returns a tuple, not one tensor"),
    ],
)
def test_what_cannot_be_compared_is_one_line_and_exit_2(tmp_path, torch_spec, expected):
    (tmp_path / "raises.py").write_text("raise RuntimeError('broken on import')\n")
    (tmp_path / "pair.py").write_text(
        textwrap.dedent("""
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.f, self.fc = nn.Flatten(), nn.Linear(784, 10)
            def forward(self, x):
                return self.fc(self.f(x)), x
    """)
    )
    (tmp_path / "ctor.py").write_text("import torch.nn as nn\nclass Net(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n")
    ports = Path(CASES[0].spec("torch").split(":")[0]).parent
    spec = torch_spec.format(ports=ports, tmp=tmp_path)
    status, out, err = run_cli([spec, f"{ports}/right_relu_paddle.py:Net", "--input", "1,28,28"])
    assert status == 2 and out == ""
    assert expected in err and err.startswith("parity.diff: error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_bad_flags_are_one_line(tmp_path):
    ports = Path(CASES[0].spec("torch").split(":")[0]).parent
    pair = [f"{ports}/right_relu_torch.py:Net", f"{ports}/right_relu_paddle.py:Net"]
    for args, expected in (
        ([*pair, "--input", "1,x,28"], "is not C,H,W"),
        ([*pair], "one of the arguments --input --data is required"),
        ([*pair, "--input", "1,28,28", "--optimizer", "adamw"], "invalid choice: 'adamw'"),
        ([*pair, "--input", "1,28,28", "--json", pair[0].split(":")[0]], "an output never replaces an input"),
    ):
        status, out, err = run_cli(args)
        assert status == 2 and expected in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "anything").exists()


def test_a_forward_that_raises_in_the_port_is_a_finding_not_a_crash():
    """shape_raises: the paddle Linear that raises is named with the input shape it got (exit 1)."""
    case = next(c for c in CASES if c.name == "shape_raises")
    report = compare(load_factory(case.spec("torch"), "torch"), load_factory(case.spec("paddle"), "paddle"), np.random.default_rng(0).random((8, 1, 28, 28)))
    f = report.first_difference
    assert not report.equal and f.cause == "raised" and f.paddle == "fc1" and "(8, 400)" in f.detail


def test_the_users_models_are_given_back_as_they_were():
    """The comparison casts both models, copies weights, trains and rounds torch's epsilon as
    paddle holds it: afterwards each model has its own dtype, mode and epsilon, the source its
    weights and buffers, and the target the source's (so comparing them as given is equal)."""
    case = next(c for c in CASES if c.name == "right_bn_dropout")
    t, p = load_factory(case.spec("torch"), "torch"), load_factory(case.spec("paddle"), "paddle")
    t.eval()
    eps = {n: m.eps for n, m in t.named_modules() if hasattr(m, "eps")}
    before = {fw: diff.module(fw, "diff").state(m) for fw, m in (("torch", t), ("paddle", p))}
    report = compare(t, p, np.random.default_rng(0).random((8, *case.input)), train=1, accept=("batchnorm_biased_variance",))
    assert report.equal and any("float32" in n for n in report.notes)
    assert {n: m.eps for n, m in t.named_modules() if hasattr(m, "eps")} == eps
    after = {fw: diff.module(fw, "diff").state(m) for fw, m in (("torch", t), ("paddle", p))}
    assert all(after["torch"][k].dtype == v.dtype and np.array_equal(after["torch"][k], v) for k, v in before["torch"].items())
    assert all(after["paddle"][k].dtype == v.dtype for k, v in before["paddle"].items())
    assert not t.training and p.training
    again = compare(t, p, np.random.default_rng(1).random((8, *case.input)), copy_weights=False, dtypes=("float64",))
    assert again.equal, again


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_training_with_each_optimizer_on_mnist_is_equal(tmp_path, optimizer):
    """Three steps of each framework's own optimizer on MNIST's first batches (random images where
    MNIST is absent): equal in float64 within TRAIN_TOL; paddle's Momentum holds 0.9 in float32,
    and torch's SGD is given that value (the note says so)."""
    from lenet_spec.data import find_dataset

    case = next(c for c in CASES if c.name == "right_relu")
    data = ["--data", "mnist"] if find_dataset("mnist", None, "train") else ["--input", "1,28,28"]
    args = [case.spec("torch"), case.spec("paddle"), *data, "--train", "3", "--optimizer", optimizer, "--json", str(tmp_path / "r.json")]
    status, out, _ = run_cli(args)
    report = json.loads((tmp_path / "r.json").read_text())
    assert status == 0, out
    train64 = next(p for p in report["phases"] if (p["phase"], p["mode"], p["dtype"]) == ("train", "train", "float64"))
    assert train64["compared"] > 0 and train64["passed"]  # within TRAIN_TOL (Adam's normalised steps carry rounding of tiny gradients: 1e-11 seen)
    assert ("Momentum's momentum in float32" in out) == (optimizer == "momentum")


def test_a_module_path_and_json_on_stdout(tmp_path):
    """module.path:NAME (the corpus folder is on sys.path here), and --json alone: the document on
    stdout, the table on stderr; the differences that follow are in the document, marked."""
    status, out, err = run_cli(["flatten_order_torch:Net", "flatten_order_paddle:Net", "--input", "1,28,28", "--dtype", "float64", "--json"])
    doc = json.loads(out)
    assert status == 1 and "DIFFERENT" in err
    assert doc["first_difference"]["cause"] == "between" and doc["following"] == len(doc["following_differences"]) > 0
    assert all(f["following"] for f in doc["following_differences"])
    status, _, err = run_cli(["flatten_order_torch:Net", "flatten_order_paddle:Net", "--input", "1,4096,4096", "--batch", "16"])
    assert status == 2 and "give a smaller --batch" in err
