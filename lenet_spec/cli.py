"""What every command line of the project shares (standard library only): help formatting,
checking outputs before the work, and the edges of main (Ctrl-C, a closed pipe)."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
from pathlib import Path
from typing import Callable, Iterable, NoReturn


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already says its default, the
    default is None (an option whose default is worked out at run time says so itself), or the
    option is an on/off flag (store_true: "(default: False)" says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.nargs == 0 or "(default" in text:
            return text
        return super()._get_help_string(action)


class UsageError(ValueError):
    """A command line that cannot be carried out as given; the message is the line to print."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse as every command of the project uses it: a mistake in a flag is one line (no
    usage block: `--help` shows it) with a suggestion where a known word is close, status 2;
    no abbreviations (`--epoch` is not taken for `--epochs`); HelpFormatter by default."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        # A mistyped flag is the mistake to name, before the arguments it left missing.
        words = list(sys.argv[1:] if args is None else args)
        if not any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            for word in words[: words.index("--") if "--" in words else len(words)]:
                if word.startswith("--") and word.partition("=")[0] not in self._option_string_actions:
                    self.error(f"unrecognized arguments: {word}")
        return super().parse_known_args(words, namespace)

    def _check_value(self, action: argparse.Action, value) -> None:
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}; choose from {', '.join(choices)}{did_you_mean(str(value), choices)}")

    def error(self, message: str) -> NoReturn:
        unknown = message.partition("unrecognized arguments: ")[2].split()
        flags = [f for f in unknown if f.startswith("-")]
        if flags:
            message += did_you_mean(flags[0].partition("=")[0], [s for s in self._option_string_actions if s.startswith("--")])
        self.exit(2, f"{self.prog}: error: {message}{'' if message.endswith('?') else ' (see --help)'}\n")


# --json means one thing in every command: the results as one JSON document, and stdout carries
# that document alone (for `| jq`). Commands whose report is a table of their own take --json as
# an on/off flag; the ones that keep records (parity.check, the benchmarks) take `--json [PATH]`:
# alone it prints the document on stdout and sends the report to stderr, with a PATH it writes
# the document there (atomically, never over an input) and leaves the report on stdout.
JSON_STDOUT = "-"


def add_json_option(parser: argparse.ArgumentParser, what: str = "the results", default: str | None = None) -> None:
    """--json [PATH] for a command that keeps records (see JSON_STDOUT)."""
    where = f"; default: {default}" if default else ""
    parser.add_argument("--json", nargs="?", const=JSON_STDOUT, default=default, metavar="PATH",
                        help=f"{what} as JSON: alone, on stdout (the report goes to stderr); with PATH, written to PATH{where}")  # fmt: skip


@contextlib.contextmanager
def report_to_stderr(json: str | None):
    """With `--json` alone, the report printed inside goes to stderr and this yields the real
    stdout, for the document; otherwise nothing changes and it yields None."""
    if json != JSON_STDOUT:
        yield None
        return
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        yield stdout


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """'; did you mean X?' when one of `known` is close to `word` (difflib's ratio), else ''."""
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def variant_arg(text: str):
    """argparse `type=` of every command's --variant: a built-in variant's name or a spec file's
    path (lenet_spec.variants.resolve), as a Variant; a mistake is the parser's one line, status 2."""
    from .variants import SPEC_SUFFIX, VARIANTS, resolve

    if text not in VARIANTS and not text.endswith(SPEC_SUFFIX):  # as argparse's choices say it, the spec file offered too
        hint = did_you_mean(text, VARIANTS)
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r}; choose from {', '.join(VARIANTS)}, or a {SPEC_SUFFIX} spec file{hint}")
    try:
        return resolve(text)
    except ValueError as e:  # SpecError too
        raise argparse.ArgumentTypeError(str(e)) from None


def variant_or_all_arg(text: str):
    """variant_arg, or the word "all" (every built-in variant) as itself."""
    return text if text == "all" else variant_arg(text)


def variant_list_arg(text: str) -> list:
    """A comma-separated list of what variant_arg takes, as Variants."""
    return [variant_arg(part) for part in text.split(",") if part]


VARIANT_HELP = "a built-in variant's name or a .toml spec file (lenet_spec.specfile)"


ENV_CHECK = "python -m parity.check --env"  # what this machine has for the project, in one screen


def no_gpu(framework: str, version: str, cuda: str | None, why: str | None = None) -> str:
    """The one line of every command given `--device gpu` where `framework` (torch, paddle,
    onnxruntime) sees no GPU; the caller puts "<prog>: error: " before it.

    Args:
        version: the framework's version, as it reports it.
        cuda: the CUDA version the framework was built for; None for a CPU build.
        why: instead of the reason worked out from `cuda`.
    """
    if why is None:
        why = f"{framework} {version} is a CPU build" if not cuda else f"{framework} {version} is built for CUDA {cuda} but cannot use a GPU here"
    return f"--device gpu: {framework} sees no CUDA GPU ({why}); see what this machine has with `{ENV_CHECK}`, or use --device cpu"


# The files a trainer writes into its --out folder (lenet_train.loop): no other command may
# replace them, since a run is resumed and extended from them.
RUN_FILES = ("metrics.jsonl", "curves.png", "predictions.png", "confusion.png")
CHECKPOINT_SUFFIXES = (".pt", ".pdparams", ".safetensors")
RUN_NAMES = (*RUN_FILES, *(f"{stem}{suffix}" for stem in ("last", "best") for suffix in CHECKPOINT_SUFFIXES))

_KINDS = ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"), (stat.S_ISFIFO, "FIFO (a named pipe)"), (stat.S_ISSOCK, "socket"))


def holds_run(folder: str | os.PathLike) -> bool:
    """`folder` holds a trainer's run: a `last` checkpoint of either framework (a run killed before
    its first epoch was saved holds none, and is no run to resume)."""
    return any((Path(folder) / f"last{suffix}").is_file() for suffix in CHECKPOINT_SUFFIXES)


def not_regular(path: str | os.PathLike) -> str | None:
    """What `path` is when it exists but is no regular file (through links): "a folder", "a
    character device"...; None for a regular file, a dangling link or nothing."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    return next((f"a {name}" for test, name in _KINDS if test(mode)), "not a regular file")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _creatable(folder: Path, what: str) -> None:
    """`folder` exists as a writable folder, or can be made: its nearest existing ancestor is one."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what}: {existing} is a file, so no folder can be made there; choose another place")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{what}: {existing} is not writable; choose another place")


def check_output(
    path: str | os.PathLike, flag: str, inputs: Iterable[str | os.PathLike | None] = (), suffixes: tuple[str, ...] = (), overwrite: bool = False
) -> Path:
    """`path` as a file this command may write, checked before any work is done. Every output of
    every command of the project goes through here. It may not be:
    - one of `inputs`, nor a file inside an input that is a folder (a data set's folder), also
      through links: an output never replaces an input;
    - anything but a regular file where it exists: a device, a FIFO, a socket or a folder (the
      output is renamed into place, which would replace `/dev/full` itself);
    - one of a trainer's run files in a folder that holds a run (`RUN_NAMES`), unless
      `overwrite`: a finished run is resumed and extended from them;
    - without one of `suffixes` (if given), or where its folder cannot be made.

    Raises:
        UsageError: one line naming the flag and the problem.
    """
    out = Path(path)
    what = f"{flag} {path}"
    if suffixes and out.suffix not in suffixes:
        raise UsageError(f"{what}: must end in {' or '.join(suffixes)}")
    for given in inputs:
        if given is None:
            continue
        given = Path(given)
        if _same_file(out, given):
            raise UsageError(f"{what} is the input {given}; an output never replaces an input: choose another name")
        if given.is_dir() and os.path.lexists(out) and _inside(out, given):
            raise UsageError(f"{what} is a file of the input folder {given}; an output never replaces an input: choose another name")
    kind = not_regular(out)
    if kind == "a folder":
        raise UsageError(f"{what} is a folder; give a file name")
    if kind:
        raise UsageError(f"{what} is {kind}, not a regular file, and writing the output would replace it; give the name of a file")
    if not overwrite and out.name in RUN_NAMES and holds_run(out.parent):
        raise UsageError(
            f"{what} would replace {out.name} of the run in {out.parent}, which is resumed from its files; choose another name or folder, or pass --overwrite"
        )
    _creatable(out.parent, what)
    return out


def check_output_folder(path: str | os.PathLike, flag: str) -> Path:
    """`path` as a folder this command may write into, checked before any work is done.

    Raises:
        UsageError: one line naming the flag and the problem.
    """
    out = Path(path)
    kind = not_regular(out)
    if out.exists() and kind != "a folder":
        raise UsageError(f"{flag} {path} is {kind or 'a file'}, not a folder; choose another {flag}")
    _creatable(out, f"{flag} {path}")
    return out


def run(main: Callable[[], int], prog: str) -> NoReturn:
    """`raise SystemExit(main())` with what every command of the project does at its edges:
    Ctrl-C ends it with one line and status 130, never a traceback; a reader that leaves
    (`... | head`) ends it quietly with status 0."""
    try:
        status = main()
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        status = 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 0
    raise SystemExit(status)


def _interrupted(error: BaseException | None) -> bool:
    """A KeyboardInterrupt, or an error raised while handling one (paddle's import turns a
    Ctrl-C in its middle into an ImportError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def interrupts_quietly() -> None:
    """Make a Ctrl-C before main begins (while torch or paddle is imported: seconds) end in one
    line and status 130, as `run` does after. A command calls it first, under
    `if __name__ == "__main__"`, before its module imports a framework: importing the project's
    modules from a program of one's own changes nothing."""
    if sys.excepthook is not sys.__excepthook__:
        return

    def hook(kind, value, traceback):
        if not _interrupted(value):
            return sys.__excepthook__(kind, value, traceback)
        print("interrupted while starting", file=sys.stderr)
        sys.stderr.flush()
        os._exit(130)

    sys.excepthook = hook
