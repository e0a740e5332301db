"""What every command line shares: one-line flag errors with a suggestion, no abbreviations."""

from __future__ import annotations

import pytest

from lenet_spec.__main__ import main as spec_main
from lenet_spec.cli import ArgumentParser, did_you_mean


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m tool")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--variant", choices=["lenet5", "lenet5-1998", "d2l"])
    return p


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--epoch", "1"], "python -m tool: error: unrecognized arguments: --epoch; did you mean --epochs?"),  # before: taken as --epochs
        (
            ["--variant", "lenet"],
            "python -m tool: error: argument --variant: invalid choice: 'lenet'; choose from lenet5, lenet5-1998, d2l; did you mean lenet5?",
        ),
        (["--variant", "zzz"], "python -m tool: error: argument --variant: invalid choice: 'zzz'; choose from lenet5, lenet5-1998, d2l (see --help)"),
        (["--epochs", "x"], "python -m tool: error: argument --epochs: invalid int value: 'x' (see --help)"),
        (["--vairant=d2l"], "python -m tool: error: unrecognized arguments: --vairant=d2l; did you mean --variant?"),
    ],
)
def test_a_flag_mistake_is_one_line_with_a_suggestion(capsys, argv, line):
    with pytest.raises(SystemExit) as e:
        parser().parse_args(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err == line + "\n"  # one line: no usage block


def test_a_suggestion_only_when_one_is_close():
    assert did_you_mean("--epoch", ["--epochs", "--out"]) == "; did you mean --epochs?"
    assert did_you_mean("--zzz", ["--epochs", "--out"]) == ""


def test_lenet_spec_without_a_command_lists_the_variants(capsys):
    assert spec_main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("lenet5 ") and "lenet-caffe-dropout" in out and "python -m lenet_spec summary VARIANT" in out
    assert spec_main(["summary", "lenet"]) == 2
    assert "did you mean lenet5?" in capsys.readouterr().err


def _mains():
    import importlib

    from lenet_train.cli import evaluate_main, train_main

    mains = {f"lenet_{fw}.train": (lambda a, fw=fw: train_main(fw, a)) for fw in ("torch", "paddle")}
    mains |= {f"lenet_{fw}.evaluate": (lambda a, fw=fw: evaluate_main(fw, a)) for fw in ("torch", "paddle")}
    for name in ("lenet_spec.__main__", "parity.check", "parity.convert", "export.__main__", "export.predict", "export.verify", "export.serve",
                 "benchmarks.run", "benchmarks.distributed", "benchmarks.serve"):  # fmt: skip
        mains[name] = importlib.import_module(name).main
    return mains


@pytest.mark.parametrize("command", sorted(_mains()))
def test_every_command_says_a_flag_mistake_in_one_line(capsys, command):
    """Every command's parser is lenet_spec.cli.ArgumentParser: a mistyped flag is one line on
    stderr naming it, with the flag it is close to, and status 2 (before: argparse's usage block)."""
    with pytest.raises(SystemExit) as e:
        _mains()[command](["--hepl"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("unrecognized arguments: --hepl; did you mean --help?\n"), err


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_the_trainer_takes_no_abbreviations(capsys, framework):
    from lenet_train.cli import train_main

    with pytest.raises(SystemExit):
        train_main(framework, ["--epoch", "1"])  # before: taken as --epochs
    assert capsys.readouterr().err == f"python -m lenet_{framework}.train: error: unrecognized arguments: --epoch; did you mean --epochs?\n"


@pytest.mark.cross
def test_json_alone_puts_the_document_on_stdout_and_the_report_on_stderr(capsys, tmp_path):
    """--json means one thing everywhere: stdout carries the JSON document alone. parity.check,
    which keeps records, also takes --json PATH: the file, with the table on stdout as before."""
    import json

    from parity.check import main

    argv = ["--variant", "lenet5", "--dtype", "float64", "--direction", "torch2paddle", "--batch", "4"]
    assert main([*argv, "--json"]) == 0  # before: "--json needs a PATH"
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [(r["variant"], r["direction"], r["dtype"], r["passed"]) for r in rows] == [("lenet5", "torch2paddle", "float64", True)]
    assert "1 passed, 0 failed" in err
    assert main([*argv, "--json", str(tmp_path / "r.json")]) == 0
    out, _ = capsys.readouterr()
    assert "1 passed, 0 failed" in out and json.loads((tmp_path / "r.json").read_text()) == rows
