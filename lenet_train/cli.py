"""The command lines of lenet_torch.train / lenet_paddle.train and of their evaluate: one set of
flags, one behaviour, whichever framework runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from lenet_spec import VARIANTS, get_variant
from lenet_spec.checkpoint import CheckpointError
from lenet_spec.cli import VARIANT_HELP, ArgumentParser, HelpFormatter, RUN_NAMES, UsageError, check_output_folder, holds_run, not_regular, variant_arg
from lenet_spec.data import DATASETS, IMAGE_SHAPES, SEARCH_ORDER, DataError, load_split, locate
from lenet_spec.frameworks import module, package
from lenet_spec.recipe import OPTIMIZERS, SCHEDULES, Recipe, default_recipe, describe, extend
from lenet_spec.safe_pickle import shown
from lenet_spec.variants import DATASET_CLASSES

from . import plots
from .distributed import DEFAULT_TIMEOUT_S, LaunchError, PeerLost, World
from .loop import Data, Diverged, Stopped, confusion, evaluate, fit, run_files

DATA_DIR_HELP = (
    f"folder holding the data set, or to download it into (default: the first of these that holds it: {SEARCH_ORDER}; else a download into the cache)"
)
# What a resumed run takes from its checkpoint; giving another value on the command line is an error.
RUN_FLAGS = ("dataset", "epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay", "seed", "augment", "dtype", "limit")


def recipes_epilog() -> str:
    """Every variant's default recipe, for --help: the values behind "default: the recipe's"."""
    lines = ["the recipes (defaults of the flags above, per variant; lenet_spec/recipe.py):"]
    for name in VARIANTS:
        lines.append(f"  {name:<12} {describe(default_recipe(name))}")
        if default_recipe(name, augment=True) != default_recipe(name):
            lines.append(f"  {'  --augment':<12} {describe(default_recipe(name, augment=True))}")
    return "\n".join(lines)


class _HelpWithEpilog(HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """The project's help, with the epilog's lines kept as written."""


def train_parser(framework: str) -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog=f"python -m lenet_{framework}.train",
        description=f"Train a LeNet variant in {framework}.",
        formatter_class=_HelpWithEpilog,
        epilog=recipes_epilog(),
    )
    p.add_argument(
        "--variant", default=None, type=variant_arg, metavar="NAME|SPEC.toml", help=f"network to train: {VARIANT_HELP} (default: lenet5, or the resumed run's)"
    )
    p.add_argument("--dataset", default=None, choices=list(DATASETS), help="data set (default: the variant's recipe)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--optimizer", default=None, choices=list(OPTIMIZERS), help="optimizer (default: the recipe's)")
    p.add_argument("--schedule", default=None, choices=list(SCHEDULES), help="learning-rate schedule (default: the recipe's)")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="weight decay: L2 added to the gradient; decoupled (p -= lr * wd * p) with adamw (default: the recipe's)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the initial weights, batch order and distortions (default: 0)")
    p.add_argument(
        "--augment",
        action="store_true",
        default=None,
        help="random affine distortions as in the 1998 paper, with the variant's recipe for them where it has one",
    )
    p.add_argument("--device", default="auto", choices=["cpu", "gpu", "auto"], help="where to train (default: auto: a GPU when the framework sees one)")
    p.add_argument("--dtype", default=None, choices=["float32", "float64"], help="parameter dtype (default: float32)")
    p.add_argument("--limit", type=int, default=None, help="train on the first N training images only (smoke runs)")
    p.add_argument("--out", default=None, help="output folder (default: runs/<framework>-<variant>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint; with a larger --epochs, extend it (cosine and "
        "onecycle schedules restart over the added epochs)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (without it, a finished or started run there is never replaced)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, only the per-epoch lines")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="under a launcher (torchrun, paddle.distributed.launch): seconds a process waits for the others before the job fails",
    )
    return p


def load_data(dataset: str, data_dir: str | None, framework: str, limit: int | None = None) -> Data:
    """Both splits as arrays, found (or downloaded with the framework's downloader) by lenet_spec.data."""
    downloader = module(framework, "data").downloader()
    folder = locate(dataset, data_dir, downloader)
    train_x, train_y = load_split(folder, "train", dataset)
    test_x, test_y = load_split(folder, "test", dataset)
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be at least 1, got {limit}")
        train_x, train_y = train_x[:limit], train_y[:limit]
    return Data(train_x, train_y, test_x, test_y)


def load_data_in_turn(dataset: str, data_dir: str | None, framework: str, limit: int | None, world: World, backend_module) -> Data:
    """load_data; in a job, process 0 first (it may download), then the others, so that no two
    download into one folder. A process that fails says why; the others end quietly.

    Raises:
        DataError: this process could not load the data.
        LaunchError: another process could not (it printed why).
    """
    data, error = None, None
    for turn in (True, False) if world.size > 1 else (world.lead,):
        if turn == world.lead:
            try:
                data = load_data(dataset, data_dir, framework, limit)
            except DataError as e:
                error = e
        if world.size > 1 and backend_module.all_sum(world, [float(error is not None)])[0]:
            if error is not None:
                raise error
            raise LaunchError("another process of the job could not load the data (it says why)")
    if error is not None:
        raise error
    return data


def _error(framework: str, message: str, world: World = World(), every: bool = False) -> int:
    """Print the one line of a failed run (in a job: from process 0 only, unless `every` process
    may fail on its own, then prefixed with which); return the exit status."""
    if world.size > 1 and every:
        message = f"process {world.rank} of {world.size}: {message}"
    if world.lead or every:
        print(f"lenet_{framework}.train: error: {message}", file=sys.stderr)
    return 2


def _stored_settings(meta: dict, last: Path) -> dict:
    """The run flags a checkpoint was trained with (recipe fields from its recipe), checked, as
    a stranger's checkpoint may say anything.

    Raises:
        CheckpointError: they are missing or damaged.
    """
    try:
        recipe = Recipe.from_dict(meta.get("recipe"))
        settings = {**meta, **recipe.to_dict()}  # recipe fields from the recipe ("optimizer" in the envelope is its state)
        epoch, seed, limit = settings.get("epoch"), settings.get("seed", 0), settings.get("limit")
        if not (isinstance(epoch, int) and 1 <= epoch <= recipe.epochs):
            raise ValueError(f"its epoch {shown(epoch)} is not one of the recipe's 1..{recipe.epochs}")
        if not isinstance(seed, int) or not isinstance(settings.get("augment", False), bool) or settings.get("dtype", "float32") not in ("float32", "float64"):
            raise ValueError("its seed, augment or dtype setting is damaged")
        if limit is not None and not (isinstance(limit, int) and limit >= 1):
            raise ValueError(f"its limit {shown(limit)} is not a count")
    except ValueError as e:
        raise CheckpointError(f"{last}: its run settings cannot be resumed ({e})") from None
    return settings


def train_main(framework: str, argv: list[str] | None = None) -> int:
    """The trainer, in one process or in each process of a job its framework's launcher started
    (lenet_train.distributed): every process checks the command line the same way, so a wrong
    one ends them all with process 0's one line."""
    args = train_parser(framework).parse_args(argv)
    try:
        world = World.from_env(framework)
    except LaunchError as e:
        return _error(framework, str(e))
    status = _train(framework, args, world)
    module(framework, "train").end_distributed()
    return status


def _train(framework: str, args: argparse.Namespace, world: World) -> int:
    out = Path(args.out or f"runs/{framework}-{args.variant.name if args.variant else 'lenet5'}")
    given = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k) is not None}
    backend_module = module(framework, "train")
    suffix = backend_module.Backend.suffix
    if args.resume and args.overwrite:
        return _error(framework, "--resume continues the run in --out and --overwrite replaces it; give one of them", world)
    if args.seed is not None and not 0 <= args.seed < 2**63:
        return _error(framework, f"--seed must be a whole number from 0 to 2**63 - 1, got {args.seed}", world)
    if not args.timeout > 0:
        return _error(framework, f"--timeout must be a positive number of seconds, got {args.timeout}", world)
    try:
        check_output_folder(out, "--out")
    except UsageError as e:
        return _error(framework, str(e), world)
    # A run's file names in --out that are no regular file (a device, a FIFO, a link to one):
    # the run would replace them; only --overwrite, which replaces the run, removes them.
    strange = [(out / name, kind) for name in RUN_NAMES if (kind := not_regular(out / name))]
    for path, kind in strange:
        if kind == "a folder" or not args.overwrite:
            fix = (
                "remove it or choose another --out"
                if kind == "a folder"
                else ("remove it, replace it with the run's own by --overwrite, or choose another --out")
            )
            return _error(framework, f"{path} is {kind}, not the regular file a run writes there; {fix}", world)
    existing = run_files(out) + [path for path, _ in strange]  # run_files: the regular ones
    if args.resume:
        last = out / f"last{suffix}"
        if not last.exists():
            others = [p.name for p in existing if p.stem == "last"]
            hint = f"it holds {others[0]}, which another trainer wrote: resume it with that framework's trainer" if others else "start the run without --resume"
            return _error(framework, f"--resume: {last} does not exist; {hint}", world)
        try:
            resumed = package(framework).load(last)
            meta, run_spec = resumed.meta, resumed.spec
            stored = _stored_settings(meta, last)
        except CheckpointError as e:
            return _error(framework, str(e), world)
        extend_to = given.pop("epochs", None)  # more epochs: the one setting a run can take on resuming
        conflicts = [f"--{k.replace('_', '-')} {v} (run has {stored.get(k)})" for k, v in given.items() if k in stored and stored.get(k) != v]
        if args.variant is not None and meta.get("variant") != args.variant.name:
            conflicts.append(f"--variant {args.variant.name} (run has {meta.get('variant')})")
        elif args.variant is not None and run_spec != args.variant:
            conflicts.append(f"--variant {args.variant.name} (the run's {args.variant.name} has another spec)")
        if conflicts:
            return _error(framework, f"--resume continues {out} as it was started; drop {', '.join(conflicts)} or use another --out", world)
        args.variant = run_spec
        for k in RUN_FLAGS:
            setattr(args, k, stored.get(k))
        recipe = Recipe.from_dict(meta["recipe"])  # the run's own, whatever the defaults are now
        if extend_to is not None and extend_to != recipe.epochs:
            try:
                recipe, note = extend(recipe, extend_to)
            except ValueError as e:
                return _error(framework, str(e), world)
            print(note)
    elif existing and not args.overwrite and holds_run(out):
        names = ", ".join(p.name for p in existing)
        return _error(framework, f"{out} already holds a run ({names}); continue it with --resume, replace it with --overwrite, or choose another --out", world)
    elif existing and not args.overwrite:  # what a start killed before its first `last` was written leaves: no run to resume
        if world.lead:
            print(
                f"{out} holds {', '.join(p.name for p in existing)} but no checkpoint (a start that ended before its first epoch was saved); starting afresh "
                f"there"
            )
    variant = args.variant or get_variant("lenet5")
    if world.size > 1 and variant.has_batchnorm:
        return _error(
            framework,
            f"{variant.name} has BatchNorm, whose statistics would be each process's shard's alone (synchronised BatchNorm is not built "
            f"yet); train it in one process",
            world,
        )
    if not args.resume:
        try:
            recipe = default_recipe(variant, bool(args.augment)).with_overrides(
                dataset=args.dataset,
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                optimizer=args.optimizer,
                schedule=args.schedule,
                weight_decay=args.weight_decay,
            )
        except ValueError as e:
            return _error(framework, str(e), world)
    if IMAGE_SHAPES[recipe.dataset] != variant.input.shape:
        shapes = "x".join(map(str, variant.input.shape)), "x".join(map(str, IMAGE_SHAPES[recipe.dataset]))
        return _error(framework, f"{variant.name} takes {shapes[0]} images and {recipe.dataset}'s are {shapes[1]}; choose a data set of its size", world)
    seed, dtype, augment = args.seed or 0, args.dtype or "float32", bool(args.augment)
    last = out / f"last{suffix}"
    say = print if world.lead else lambda *a, **k: None
    try:
        backend_module.pick_device(args.device, world)  # a missing GPU is one line at once, before any data is read
    except ValueError as e:
        return _error(framework, str(e), world)
    try:
        try:
            backend_module.init_distributed(args.device, args.timeout)
        except (RuntimeError, ValueError) as e:  # the rendezvous failed: a port in use, a wrong world size, an unreachable master
            return _error(framework, f"cannot join the job ({' '.join(str(e).split())[:200]})", world, every=True)
        try:
            data = load_data_in_turn(recipe.dataset, args.data_dir, framework, args.limit, world, backend_module)
            world.check_batches(len(data.train_labels), recipe.batch_size)
            backend = backend_module.Backend(variant, recipe, seed, args.device, dtype, world)
        except LaunchError as e:
            return _error(framework, str(e), world)
        except (DataError, ValueError) as e:
            return _error(framework, str(e), world, every=world.size > 1)
        say(f"{variant.name} on {recipe.dataset} ({len(data.train_labels):,} train / {len(data.test_labels):,} test), {backend.describe()}, {dtype}")
        say(f"recipe: {json.dumps(recipe.to_dict())}")
        if args.overwrite and world.lead:
            for path in existing:
                path.unlink()
            if existing:
                print(f"--overwrite: removed the run that was in {out} ({', '.join(p.name for p in existing)})")
        settings = {"dataset": recipe.dataset, "limit": args.limit, "dtype": dtype}
        history = fit(backend, recipe, data, out, seed, augment, progress=not args.no_progress, resume=args.resume, settings=settings)
    except Stopped:
        return 2  # process 0 printed why
    except (CheckpointError, Diverged, OSError, PeerLost) as e:
        return _error(framework, str(e), world, every=isinstance(e, PeerLost))
    except KeyboardInterrupt:
        if last.exists():
            print(f"\ninterrupted; continue with: python -m lenet_{framework}.train --resume --out {out}", file=sys.stderr)
        else:
            print("\ninterrupted before the first epoch ended; nothing was saved", file=sys.stderr)
        return 130
    if not world.lead:
        return 0
    try:
        test = evaluate(backend, data.test_images, data.test_labels, recipe)
        classes = DATASET_CLASSES[recipe.dataset]
        plots.curves(history, out / "curves.png", f"{framework} {variant.name} on {recipe.dataset}")
        plots.predictions(data.test_images, data.test_labels, test["predicted"], classes, out / "predictions.png", title=f"{framework} {variant.name}")
        plots.confusion_matrix(
            confusion(data.test_labels, test["predicted"], len(classes)), classes, out / "confusion.png", f"{framework} {variant.name} on {recipe.dataset}"
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted while drawing the pictures; the training is complete: checkpoints and metrics.jsonl are in {out}/", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk: atomic_write's one line; the checkpoints are complete
        return _error(framework, f"{e} (the training is complete: the checkpoints and metrics.jsonl are in {out}/)", world)
    print(f"final test accuracy {test['acc']:.4f} (error {100 * (1 - test['acc']):.2f}%); wrote {out}/")
    return 0


def evaluate_main(framework: str, argv: list[str] | None = None) -> int:
    """python -m lenet_<framework>.evaluate CKPT: test accuracy, per-class accuracy, confusion matrix."""
    p = ArgumentParser(prog=f"python -m lenet_{framework}.evaluate", description=evaluate_main.__doc__, formatter_class=HelpFormatter)
    p.add_argument("checkpoint", help="a .pt, .pdparams or .safetensors checkpoint, from either framework")
    p.add_argument(
        "--variant",
        default=None,
        type=variant_arg,
        metavar="NAME|SPEC.toml",
        help=f"the checkpoint's variant ({VARIANT_HELP}); needed for a plain state dict (a checkpoint of this project carries its spec)",
    )
    p.add_argument("--dataset", default=None, choices=list(DATASETS), help="data set (default: the one the checkpoint was trained on)")
    p.add_argument("--data-dir", default=None, help=DATA_DIR_HELP)
    p.add_argument("--device", default="auto", choices=["cpu", "gpu", "auto"], help="where to evaluate (auto: a GPU when the framework sees one)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a report")
    args = p.parse_args(argv)
    from lenet_spec.frameworks import FrameworkMissing
    from lenet_spec.load import load_checkpoint
    from lenet_spec.mapping import convert

    try:
        backend_module = module(framework, "train")
        backend_module.pick_device(args.device)  # a missing GPU is one line at once, before any data is read
        ckpt = load_checkpoint(args.checkpoint, args.variant)
        source = ckpt.framework
        variant = ckpt.spec  # the network the checkpoint carries (or the built-in of its name), no spec file needed
        state = convert(ckpt.state, variant, source, framework)
        recipe = default_recipe(variant)
        if "recipe" in ckpt.meta:
            try:
                recipe = Recipe.from_dict(ckpt.meta["recipe"])
            except ValueError as e:
                raise CheckpointError(f"{args.checkpoint}: its recipe is damaged ({e})") from None
        dataset = args.dataset or ckpt.meta.get("dataset") or recipe.dataset
        if dataset not in DATASETS:
            raise DataError(f"{variant.name} was trained on {shown(dataset)}, which this project does not load")
        if IMAGE_SHAPES[dataset] != variant.input.shape:
            raise DataError(
                f"{variant.name} takes {'x'.join(map(str, variant.input.shape))} images and {dataset}'s are {'x'.join(map(str, IMAGE_SHAPES[dataset]))}"
            )
        data = load_data(dataset, args.data_dir, framework)
        backend = backend_module.Backend(variant, recipe, 0, args.device, ckpt.dtype)
        module(framework, "bridge").load_state_numpy(backend.model, state)
    except (CheckpointError, DataError, FrameworkMissing, ValueError) as e:
        print(f"lenet_{framework}.evaluate: error: {e}", file=sys.stderr)
        return 2
    result = evaluate(backend, data.test_images, data.test_labels, recipe)
    matrix = confusion(data.test_labels, result["predicted"], variant.num_classes)
    per_class = (np.diag(matrix) / np.maximum(1, matrix.sum(1))).tolist()
    classes = DATASET_CLASSES[dataset]
    if args.json:
        print(
            json.dumps(
                {
                    "checkpoint": str(args.checkpoint),
                    "source_framework": source,
                    "framework": framework,
                    "variant": variant.name,
                    "dataset": dataset,
                    "test_acc": result["acc"],
                    "test_loss": result["loss"],
                    "per_class_acc": dict(zip(classes, per_class)),
                    "confusion": matrix.tolist(),
                }
            )
        )
        return 0
    print(f"{args.checkpoint} ({source} checkpoint) evaluated in {framework}: {variant.name} on {dataset} test set")
    print(f"test accuracy {result['acc']:.4f} (error {100 * (1 - result['acc']):.2f}%), loss {result['loss']:.4f}")
    print("per-class accuracy: " + ", ".join(f"{c} {a:.4f}" for c, a in zip(classes, per_class)))
    print("confusion matrix (rows: true class; columns: predicted class, in the same order):")
    print(f"  {'true / pred':>11} " + " ".join(f"{c[:5]:>5}" for c in classes))
    for c, row in zip(classes, matrix):
        print(f"  {c[:11]:>11} " + " ".join(f"{v:5d}" for v in row))
    return 0
