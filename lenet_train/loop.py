"""The epoch loop: same batches in the same order for every framework, metrics, checkpoints."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol

import numpy as np

from lenet_spec.data import affine_thetas, batch_slices, epoch_order
from lenet_spec.recipe import Recipe, lr_at


class Backend(Protocol):
    framework: str
    suffix: str

    def describe(self) -> str: ...
    def set_train_data(self, images: np.ndarray, labels: np.ndarray) -> None: ...
    def reset_running(self) -> None: ...
    def running(self) -> tuple[float, float]: ...
    def train_step(self, index: np.ndarray, lr: float, theta: np.ndarray | None = None) -> None: ...
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


def steps_per_epoch(n: int, batch_size: int) -> int:
    return math.ceil(n / batch_size)


def epoch_steps(n: int, recipe: Recipe, seed: int, epoch: int, augment: bool, size: int) -> Iterator[tuple[np.ndarray, float, np.ndarray | None]]:
    """(image indices, learning rate, distortions or None) of every step of `epoch`, in order:
    the schedule every framework trains on, a function of (seed, epoch) alone."""
    order = epoch_order(n, seed, epoch)
    thetas = affine_thetas(n, seed, epoch, size=size) if augment else None
    slices = batch_slices(n, recipe.batch_size)
    for i, sl in enumerate(slices):
        index = order[sl]
        yield index, lr_at(recipe, epoch * len(slices) + i, len(slices)), None if thetas is None else thetas[index]


def run_epoch(backend: Backend, data: Data, recipe: Recipe, seed: int, epoch: int, augment: bool, progress: bool = False) -> tuple[float, float]:
    """One pass over the training set in the order of (seed, epoch); returns mean loss and accuracy."""
    n = len(data.train_labels)
    spe = steps_per_epoch(n, recipe.batch_size)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=spe, desc=f"epoch {epoch + 1}/{recipe.epochs}", unit="batch", leave=False, dynamic_ncols=True)
    backend.reset_running()
    for i, (index, lr, theta) in enumerate(epoch_steps(n, recipe, seed, epoch, augment, data.train_images.shape[-1])):
        backend.train_step(index, lr, theta)
        if bar is not None:
            bar.update(1)
            if i % 50 == 0 or i == spe - 1:
                loss, acc = backend.running()
                bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.4f}")
    if bar is not None:
        bar.close()
    return backend.running()


def fit(backend: Backend, recipe: Recipe, data: Data, out: Path, seed: int, augment: bool = False, progress: bool = True, resume: bool = False, settings: dict | None = None, log=print) -> list[dict]:
    """Train for recipe.epochs epochs, writing OUT/metrics.jsonl, OUT/last and OUT/best checkpoints.

    Args:
        settings: what else defines the run (dataset, limit, dtype...), stored in checkpoints.
    Returns:
        The per-epoch metrics records.
    """
    out.mkdir(parents=True, exist_ok=True)
    last, best = out / f"last{backend.suffix}", out / f"best{backend.suffix}"
    metrics_path = out / "metrics.jsonl"
    history: list[dict] = []
    start = 0
    if resume:
        meta = backend.restore(last)
        start = int(meta["epoch"])
        history = [json.loads(line) for line in metrics_path.read_text().splitlines()[:start]] if metrics_path.exists() else []
        log(f"resumed from {last} after epoch {start}")
    backend.set_train_data(data.train_images, data.train_labels)
    best_acc = max((r["test_acc"] for r in history), default=-1.0)
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    n = len(data.train_labels)
    spe = steps_per_epoch(n, recipe.batch_size)
    for epoch in range(start, recipe.epochs):
        t0 = time.perf_counter()
        train_loss, train_acc = run_epoch(backend, data, recipe, seed, epoch, augment, progress)
        elapsed = time.perf_counter() - t0
        test = evaluate(backend, data.test_images, data.test_labels, recipe)
        record = {
            "epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "test_loss": test["loss"], "test_acc": test["acc"],
            "images_per_s": n / elapsed, "epoch_s": elapsed, "lr_end": lr_at(recipe, (epoch + 1) * spe - 1, spe),
        }  # fmt: skip
        history.append(record)
        with metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        extra = {"recipe": recipe.to_dict(), "epoch": epoch + 1, "seed": seed, "augment": augment, "rng": {"order": "numpy default_rng([seed, epoch])", "next_epoch": epoch + 1}, "metrics": record, **(settings or {})}
        backend.save(last, **extra)
        if test["acc"] > best_acc:
            best_acc = test["acc"]
            backend.save(best, **extra)
        log(
            f"epoch {epoch + 1:>2}/{recipe.epochs}  train loss {train_loss:.4f} acc {train_acc:.4f}  "
            f"test loss {test['loss']:.4f} acc {test['acc']:.4f}  {record['images_per_s']:,.0f} img/s  {elapsed:.1f}s"
        )
    return history
