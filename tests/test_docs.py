"""The guides against the code: every command of README.md and docs/*.md names a runnable module
of the project and flags that module's --help lists, so a renamed flag cannot leave a stale page.

Each fenced ```bash block is split into commands (backslash continuations joined; `&&`, `||`,
`|`, `;` separate). A command is one of:
  - `python -m MODULE ARGS` (or `python FILE.py ARGS`): MODULE must be runnable and each `--flag`
    of ARGS must appear in `python -m MODULE --help` (and in `MODULE SUB --help` for a subcommand);
  - a launcher: `torchrun ... -m MODULE ARGS`, `python -m paddle.distributed.launch ... FILE.py
    ARGS`: the same check for MODULE / FILE; the launcher's own flags are the launcher's;
  - `python -m` of another project (pip, venv, pytest), `python -c`, or a first word of SKIPPED
    (install, shell and HTTP lines): not checked;
  - anything else: a failure, so that a new kind of line is handled on purpose.
A block preceded by the line `<!-- doctest: run -->` is also run for real (test_run_blocks, slow).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, SHARED

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_MARK = "<!-- doctest: run -->"
# First words of lines the check leaves alone: installing, the shell, talking to a served model.
SKIPPED = {"pip", "pip3", "apt-get", "apt", "git", "cd", ".", "source", "export", "curl", "ls", "mkdir", "nvidia-smi"}
OTHER_MODULES = {"pip", "venv", "pytest"}  # python -m of another project
LAUNCHERS = {"paddle.distributed.launch", "torch.distributed.run"}  # python -m LAUNCHER ... FILE.py ARGS
SEPARATORS = {"&&", "||", "|", ";", "&"}
BLOCK_TIMEOUT = 300  # seconds for one run block; the marked ones take seconds


@dataclass(frozen=True)
class Block:
    path: str
    line: int  # of the opening fence, 1-based
    text: str
    run: bool  # preceded by RUN_MARK


@dataclass(frozen=True)
class Invocation:
    module: str
    args: tuple[str, ...]  # after the module (or the file)
    command: str  # as written, for messages


def blocks(markdown: str, path: str = "<text>") -> list[Block]:
    """The fenced ```bash blocks of a Markdown text, with whether each is marked to run."""
    lines, found, i = markdown.splitlines(), [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            found.append(Block(path, i + 1, "\n".join(lines[i + 1 : end]), before == RUN_MARK))
            i = end
        i += 1
    return found


def commands(text: str) -> list[list[str]]:
    """The commands of a block's text as word lists, environment assignments (`X=1 cmd`) dropped."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token in SEPARATORS:
                while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
                    words.pop(0)
                if words:
                    out.append(words)
                words = []
            else:
                words.append(token)
    return out


def _module_of_file(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".").removesuffix(".__main__")


def _is_python(word: str) -> bool:
    return re.fullmatch(r"(.*/)?python(3(\.\d+)?)?", word) is not None


def classify(words: list[str]) -> Invocation | None:
    """What a command runs of the project, None for a line left alone; ValueError for a line of a
    kind this check does not know."""
    command = shlex.join(words)
    head, rest = words[0], words[1:]
    if head == "torchrun":
        if "-m" not in rest:
            raise ValueError(f"torchrun without -m MODULE: {command}")
        at = rest.index("-m")
        return Invocation(rest[at + 1], tuple(rest[at + 2 :]), command)
    if _is_python(head):
        if rest[:1] == ["-c"]:
            return None
        if rest[:1] == ["-m"] and len(rest) > 1:
            module, args = rest[1], rest[2:]
            if module in OTHER_MODULES:
                return None
            if module in LAUNCHERS:
                script = next((a for a in args if a.endswith(".py")), None)
                if script is None:
                    raise ValueError(f"{module} without a FILE.py: {command}")
                at = args.index(script)
                return Invocation(_module_of_file(script), tuple(args[at + 1 :]), command)
            return Invocation(module, tuple(args), command)
        if rest and rest[0].endswith(".py"):
            return Invocation(_module_of_file(rest[0]), tuple(rest[1:]), command)
    if head in SKIPPED:
        return None
    raise ValueError(f"a command of a kind the doc-test does not know (add it to test_docs.py on purpose): {command}")


@functools.cache
def runnable_modules() -> frozenset[str]:
    """The project's modules that `python -m` runs: packages with a __main__.py and public modules
    with a `__main__` guard, in the packages pyproject.toml installs."""
    include = re.search(r"include\s*=\s*\[([^\]]*)\]", (ROOT / "pyproject.toml").read_text())
    packages = [p.strip().strip("\"'").rstrip("*") for p in include.group(1).split(",") if p.strip()]
    found = set()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_of_file(str(path.relative_to(ROOT)))
            if path.name == "__main__.py" or (not path.stem.startswith("_") and re.search(r'^if __name__ == "__main__":', path.read_text(), re.MULTILINE)):
                found.add(name)
    return frozenset(found)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@functools.cache
def help_text(*argv: str) -> str:
    """`python -m MODULE [SUB] --help`, once per session, run in this process as `-m` runs it
    (runpy, as __main__): the same parser and text as a child process, without importing torch
    and paddle again for each module."""
    module, *rest = argv
    saved_argv, saved_hook = sys.argv[:], sys.excepthook
    out = io.StringIO()
    sys.argv = [module, *rest, "--help"]
    try:
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            # runpy runs a fresh copy as __main__ beside the one other tests imported, and warns
            # of it; for --help, which reads only the parser, the two cannot disagree
            warnings.filterwarnings("ignore", message=".* found in sys.modules after import of package", category=RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv, sys.excepthook = saved_argv, saved_hook  # a trainer installs its Ctrl-C hook as __main__
    assert code in (0, None), f"python -m {' '.join(argv)} --help: exit {code}"
    return out.getvalue()


def help_flags(text: str) -> tuple[set[str], set[str]]:
    """The long options of an argparse help (the usage block and the option lines), and the
    subcommands its usage offers (`{summary,...}`)."""
    usage = text.split("\n\n", 1)[0]
    option_lines = "\n".join(line for line in text.splitlines() if re.match(r"\s+-", line))
    flags = set(re.findall(r"--[A-Za-z0-9][\w-]*", usage + "\n" + option_lines))
    subcommands = {name for group in re.findall(r"\{([\w,-]+)\}\s+\.\.\.", usage) for name in group.split(",")}
    return flags, subcommands


def problems(block: Block) -> list[str]:
    """What is stale in a block: unknown modules, flags their --help does not list, unknown lines."""
    where = f"{block.path}:{block.line}"
    found = []
    for words in commands(block.text):
        try:
            inv = classify(words)
        except ValueError as e:
            found.append(f"{where}: {e}")
            continue
        if inv is None:
            continue
        if inv.module not in runnable_modules():
            found.append(f"{where}: {inv.module} is not a runnable module of the project: {inv.command}")
            continue
        flags, subcommands = help_flags(help_text(inv.module))
        if inv.args and inv.args[0] in subcommands:
            flags |= help_flags(help_text(inv.module, inv.args[0]))[0]
        for arg in inv.args:
            flag = arg.lstrip("[").split("=", 1)[0].rstrip("]")
            if flag.startswith("--") and flag != "--" and flag not in flags:
                found.append(f"{where}: {flag} is not in `python -m {inv.module} --help`: {inv.command}")
    return found


# The checker itself.

SAMPLE = f"""Text.

```bash
python -m lenet_spec summary lenet5 --json   # a comment
```

{RUN_MARK}

```bash
X=1 python -m parity.check --variant lenet5 \\
  --dtype float64 && pip install -e .
```
"""


def test_blocks_and_marks():
    found = blocks(SAMPLE, "sample.md")
    assert [(b.line, b.run) for b in found] == [(3, False), (9, True)]
    assert commands(found[1].text) == [["python", "-m", "parity.check", "--variant", "lenet5", "--dtype", "float64"], ["pip", "install", "-e", "."]]


def test_classify():
    assert classify(["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "lenet_torch.train", "--variant", "lenet5"]).module == "lenet_torch.train"
    launched = classify(shlex.split("python -m paddle.distributed.launch --nproc_per_node 2 lenet_paddle/train.py --out runs/x"))
    assert (launched.module, launched.args) == ("lenet_paddle.train", ("--out", "runs/x"))
    assert classify(shlex.split("python3 -m venv .venv")) is None
    assert classify(shlex.split("pip install -e .[cpu]")) is None
    assert classify(shlex.split("python -c 'print(1)'")) is None
    with pytest.raises(ValueError, match="does not know"):
        classify(["rm", "-rf", "runs"])


def test_runnable_modules():
    assert {
        "lenet_spec",
        "parity.check",
        "parity.convert",
        "lenet_torch.train",
        "lenet_paddle.train",
        "export",
        "export.predict",
        "export.serve",
        "benchmarks",
    } <= runnable_modules()
    assert not {"lenet_spec.cli", "lenet_spec.mapping", "export._worker"} & runnable_modules()  # a library, the table, a private child


def test_a_stale_flag_fails():
    """A real block of README.md passes; the same block with a flag the module lacks fails, naming it."""
    block = next(b for b in blocks((ROOT / "README.md").read_text(), "README.md") if "python -m parity.check --variant" in b.text)
    assert problems(block) == []
    line = next(line for line in block.text.splitlines() if "python -m parity.check --variant" in line)
    stale = Block(block.path, block.line, block.text.replace(line, line.split("#")[0] + " --no-such-flag 3"), block.run)
    assert [p for p in problems(stale) if "--no-such-flag is not in `python -m parity.check --help`" in p]
    renamed = Block("x.md", 1, "python -m parity.checks --env", False)
    assert problems(renamed) == ["x.md:1: parity.checks is not a runnable module of the project: python -m parity.checks --env"]


def test_subcommand_flags():
    assert problems(Block("x.md", 1, "python -m lenet_spec summary lenet5 --json", False)) == []
    assert problems(Block("x.md", 1, "python -m lenet_spec summary lenet5 --yaml", False))


# The guides.


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_match_the_code(doc):
    found = [p for block in blocks(doc.read_text(), str(doc.relative_to(ROOT))) for p in problems(block)]
    assert found == [], "\n".join(found)


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.DOTALL), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_anchors():
    assert anchors("# Set up\n## Distributed training: data-parallel on the frameworks' own launchers\n```bash\n# not a heading\n```") == {
        "set-up",
        "distributed-training-data-parallel-on-the-frameworks-own-launchers",
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(doc):
    """Every relative link of a guide names a file that exists, and a heading of it where it names
    one (a moved section leaves no link dangling)."""
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", doc.read_text()):
        if "://" in target:
            continue
        path = doc.parent / target if target else doc
        if not path.exists() or (anchor and anchor not in anchors(path.read_text())):
            broken.append(f"{target}#{anchor}" if anchor else target)
    assert broken == []


def test_readme_test_command_is_ci():
    """.ci/run runs README's "Run the tests" command verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run the tests", 1)[1]
    command = blocks(section)[0].text.strip()
    assert command in (ROOT / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if any(b.run for b in blocks(d.read_text()))], ids=lambda p: str(p.relative_to(ROOT)))
def test_run_blocks(doc, tmp_path):
    """The blocks marked to run, in order, in a fresh folder where `../shared/datasets` is the data."""
    data = Path(os.environ.get("LENET_DATA") or SHARED / "datasets").resolve()
    if not (data / "mnist").is_dir():
        pytest.skip("MNIST not found: set LENET_DATA to a folder holding mnist/")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "datasets").symlink_to(data)
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"  # a script, not a link: a link to a venv's python loses the venv
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    work = tmp_path / "repo"
    work.mkdir()
    env = {**_env(), "PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}", "LENET_DATA": str(tmp_path / "shared" / "datasets")}
    for block in (b for b in blocks(doc.read_text(), doc.name) if b.run):
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.text], check=False, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT
        )
        assert proc.returncode == 0, f"{block.path}:{block.line}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
