"""The epoch loop: same batches in the same order for every framework, metrics, checkpoints."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lenet_spec.checkpoint import CheckpointError, atomic_write, write_failure
from lenet_spec.cli import RUN_NAMES, not_regular
from lenet_spec import Variant
from lenet_spec.schedule import epoch_steps, steps_per_epoch
from lenet_spec.recipe import Recipe, lr_at

from .distributed import World


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; nothing of that epoch was saved."""


class Stopped(Diverged):
    """In a job, process 0 stopped the run (it says why); the other processes stop quietly."""


class Backend(Protocol):
    framework: str
    suffix: str
    variant: Variant
    world: World

    def describe(self) -> str: ...
    def set_train_data(self, images: np.ndarray, labels: np.ndarray) -> None: ...
    def reset_running(self) -> None: ...
    def running(self) -> tuple[float, float]: ...
    def totals(self) -> np.ndarray: ...
    def all_sum(self, values: np.ndarray) -> np.ndarray: ...
    def train_step(self, index: np.ndarray, lr: float, theta: np.ndarray | None = None, masks: dict[str, np.ndarray] | None = None) -> None: ...
    def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray: ...
    def save(self, path: str | Path, **extra: Any) -> None: ...
    def restore(self, path: str | Path) -> dict[str, Any]: ...


@dataclass
class Data:
    train_images: np.ndarray  # uint8 (N, H, W)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray


def loss_numpy(logits: np.ndarray, labels: np.ndarray, recipe: Recipe) -> float:
    """The recipe's mean loss, in float64, computed the same way for both frameworks' logits."""
    logits = np.asarray(logits, np.float64)
    if recipe.loss == "rbf_map":
        logits = np.concatenate([logits, np.full((len(logits), 1), -recipe.rbf_j)], 1)
    top = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return float((lse - logits[np.arange(len(labels)), labels]).mean())


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(true, predicted) counts."""
    return np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def evaluate(backend: Backend, images: np.ndarray, labels: np.ndarray, recipe: Recipe) -> dict[str, Any]:
    logits = backend.predict(images)
    predicted = logits.argmax(1)
    return {"loss": loss_numpy(logits, labels, recipe), "acc": float((predicted == labels).mean()), "predicted": predicted}


def run_epoch(backend: Backend, data: Data, recipe: Recipe, seed: int, epoch: int, augment: bool, progress: bool = False) -> tuple[float, float]:
    """One pass over the training set in the order of (seed, epoch); returns mean loss and
    accuracy, of the whole job's shards in a job (the progress bar shows process 0's).

    The bar (`progress`) is drawn only where stderr is a terminal: a log it is redirected to gets
    no frames. Its running loss and accuracy (a device sync each) are read as often as tqdm
    redraws the bar, every `mininterval` seconds, and on the last batch.
    """
    n = len(data.train_labels)
    spe = steps_per_epoch(n, recipe.batch_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=spe, desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", leave=False, dynamic_ncols=True, disable=None)  # None: off on a non-TTY
        bar = None if bar.disable else bar
    shown = -math.inf  # when the postfix was last read
    backend.reset_running()
    for i, step in enumerate(epoch_steps(n, recipe, seed, epoch, augment, data.train_images.shape[-1], backend.variant)):
        backend.train_step(*step)
        if bar is not None:
            if (now := time.perf_counter()) - shown >= bar.mininterval or i == spe - 1:
                loss, acc = backend.running()
                bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}", refresh=False)  # drawn by update(), at tqdm's own pace
                shown = now
            bar.update(1)
    if bar is not None:
        bar.close()
    loss_sum, correct, seen = (float(v) for v in backend.all_sum(backend.totals()))  # Python floats: checkpoints hold no NumPy scalars
    return loss_sum / max(1.0, seen), correct / max(1.0, seen)


# What a run writes into its --out folder (checkpoints: last<suffix>, best<suffix>).


def run_files(out: Path) -> list[Path]:
    """The files of a run in `out`, whichever framework wrote it."""
    return [out / name for name in RUN_NAMES if (out / name).is_file()]


def remove_orphans(out: Path) -> list[Path]:
    """Delete the temporary files that a run killed while writing (kill -9) leaves behind:
    atomic_write's `.<name>.<random>.tmp` beside each of the run's files. Returns them."""
    orphans = [p for name in RUN_NAMES for p in out.glob(f".{name}.*.tmp") if p.is_file()]
    for p in orphans:
        p.unlink()
    return orphans


MAX_METRICS_BYTES = 16 << 20  # a record is about 300 bytes: 50,000 epochs


def append_line(path: Path, line: str) -> None:
    """Append `line` to `path`, all of it or (a full disk) none of it.

    Raises:
        WriteError: one line naming the file; the file is cut back to what it held.
    """
    data = memoryview(line.encode())
    with path.open("ab", buffering=0) as f:
        size = f.seek(0, os.SEEK_END)
        try:
            while data:
                data = data[f.write(data) :]
        except OSError as e:
            f.truncate(size)
            raise write_failure(path, e) from None


def read_history(metrics_path: Path, epochs: int) -> list[dict]:
    """The first `epochs` records of metrics.jsonl (a resumed run's), checked: one record per
    epoch, in order, each with its test accuracy.

    Raises:
        CheckpointError: the file is damaged or shorter than the checkpoint says.
    """
    kind = not_regular(metrics_path)
    if kind or metrics_path.is_symlink():
        raise CheckpointError(f"{metrics_path} is {kind or 'a link'}, not the regular file a run writes; it cannot be resumed: start again with --overwrite")
    try:
        size = metrics_path.stat().st_size if metrics_path.exists() else 0
        if size > MAX_METRICS_BYTES:
            raise CheckpointError(
                f"{metrics_path} holds {size:,} bytes, more than the {MAX_METRICS_BYTES:,} a run writes; it cannot be resumed: start again with --overwrite"
            )
        lines = metrics_path.read_text().splitlines()[:epochs] if size else []
        history = [json.loads(line) for line in lines]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{metrics_path}: cannot be read back to resume ({e})") from None
    if len(history) != epochs or any(
        not isinstance(r, dict) or r.get("epoch") != i + 1 or not isinstance(r.get("test_acc"), (int, float)) for i, r in enumerate(history)
    ):
        raise CheckpointError(f"{metrics_path} does not hold one record for each of the {epochs} epochs the last checkpoint has done; it cannot be resumed")
    return history


def fit(
    backend: Backend,
    recipe: Recipe,
    data: Data,
    out: Path,
    seed: int,
    augment: bool = False,
    progress: bool = True,
    resume: bool = False,
    settings: dict | None = None,
    log=print,
) -> list[dict]:
    """Train for recipe.epochs epochs, writing OUT/metrics.jsonl, OUT/last and OUT/best checkpoints.

    Each epoch appends its metrics record, then writes `last`, then `best` if it is the best so
    far, each atomically. A run killed anywhere in between resumes correctly: metrics beyond
    `last`'s epoch are dropped, and a `best` that missed the last epoch is written again.

    In a job (backend.world), every process trains its shards and restores `last` on resuming;
    process 0 alone evaluates, logs and writes files, while the others wait for it at the end
    of each epoch (one collective, which also tells them whether it stopped the run).

    Args:
        settings: what else defines the run (dataset, limit, dtype...), stored in checkpoints.
    Returns:
        The per-epoch metrics records.
    Raises:
        Diverged: the training or test loss became NaN or infinite (`last` and `best` keep
            the epoch before).
        CheckpointError: `last`, or the metrics.jsonl beside it, cannot be resumed.
    """
    world = backend.world
    if not world.lead:
        log = _quiet
        progress = False
    else:
        out.mkdir(parents=True, exist_ok=True)
        for orphan in remove_orphans(out):
            log(f"removed {orphan.name}, left by a write that was killed")
    last, best = out / f"last{backend.suffix}", out / f"best{backend.suffix}"
    metrics_path = out / "metrics.jsonl"
    history: list[dict] = []
    start = 0
    if resume:
        meta = backend.restore(last)
        start = int(meta["epoch"])
        history = read_history(metrics_path, start)
        log(f"resumed from {last} after epoch {start}")
        if world.lead:
            repair_best(history, last, best, log)
    backend.set_train_data(data.train_images, data.train_labels)
    best_acc = max((r["test_acc"] for r in history), default=-1.0)
    if world.lead:
        atomic_write(metrics_path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in history)))
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        train_loss, train_acc = run_epoch(backend, data, recipe, seed, epoch, augment, progress)
        elapsed = time.perf_counter() - t0
        stop = ""
        if world.lead:
            stop = finish_epoch(backend, recipe, data, out, seed, augment, epoch, train_loss, train_acc, elapsed, history, best_acc, settings, log)
            best_acc = max(best_acc, history[-1]["test_acc"]) if not stop else best_acc
        if world.size > 1 and backend.all_sum(np.array([float(bool(stop))]))[0]:  # the others wait here for process 0
            raise Diverged(stop) if stop else Stopped("process 0 stopped the run")
        if stop:
            raise Diverged(stop)
    return history


def _quiet(*args, **kwargs) -> None:
    """The log of processes other than 0: they print nothing of the run."""


def finish_epoch(backend: Backend, recipe: Recipe, data: Data, out: Path, seed: int, augment: bool, epoch: int, train_loss: float, train_acc: float,
                 elapsed: float, history: list[dict], best_acc: float, settings: dict | None, log) -> str:  # fmt: skip
    """Process 0's end of an epoch: evaluate, append the metrics record to `history` and
    metrics.jsonl, write `last` and (when better than `best_acc`) `best`, log the line.
    Returns why the run must stop (the loss diverged; nothing is written), or "" to go on."""
    last, best, metrics_path = out / f"last{backend.suffix}", out / f"best{backend.suffix}", out / "metrics.jsonl"
    n = len(data.train_labels)
    spe = steps_per_epoch(n, recipe.batch_size)
    test = evaluate(backend, data.test_images, data.test_labels, recipe)
    if not (math.isfinite(train_loss) and math.isfinite(test["loss"])):
        kept = f"{last.name} and {best.name} hold epoch {epoch} and before" if epoch else "nothing was saved"
        return (
            f"epoch {epoch + 1}: the loss became {train_loss if not math.isfinite(train_loss) else test['loss']} (training diverged); stopped, {kept}; "
            f"lower --lr"
        )
    record = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test["loss"],
        "test_acc": test["acc"],
        "images_per_s": n / elapsed,
        "epoch_s": elapsed,
        "lr_end": lr_at(recipe, (epoch + 1) * spe - 1, spe),
        "world_size": backend.world.size,
    }
    history.append(record)
    append_line(metrics_path, json.dumps(record) + "\n")
    extra = {
        "recipe": recipe.to_dict(),
        "epoch": epoch + 1,
        "seed": seed,
        "augment": augment,
        "rng": {"order": "numpy default_rng([seed, epoch])", "next_epoch": epoch + 1},
        "metrics": record,
        "world_size": backend.world.size,
        **(settings or {}),
    }
    backend.save(last, **extra)
    if test["acc"] > best_acc:
        backend.save(best, **extra)
    log(
        f"epoch {epoch + 1:>2}/{recipe.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
        f"test loss {test['loss']:.4f} acc {test['acc']:.4f}  {record['images_per_s']:,.0f} img/s  {elapsed:.1f}s"
    )
    return ""


def repair_best(history: list[dict], last: Path, best: Path, log=print) -> None:
    """Write `best` again when it missed the epoch of `last`. In the best epoch, `best` is
    written just after `last`, from the same weights with the same metadata; a run killed in
    between leaves `best` at an earlier epoch (older than `last`), and since `last` is already
    done, resuming would never write it."""
    if not history:
        return
    winner = max(range(len(history)), key=lambda i: (history[i]["test_acc"], -i))  # the first best, as fit keeps it
    if winner != len(history) - 1 or (best.exists() and best.stat().st_mtime_ns >= last.stat().st_mtime_ns):
        return
    atomic_write(best, lambda tmp: shutil.copyfile(last, tmp))
    log(f"{best.name} missed epoch {len(history)}, the best so far; written again from {last.name}")
