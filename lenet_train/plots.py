"""Pictures of a run: learning curves, test predictions, confusion matrix (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from lenet_spec.checkpoint import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def curves(history: list[dict], path: Path, title: str) -> None:
    """Train loss, train accuracy and test accuracy per epoch, on one axis as d2l's Animator."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, [r["train_loss"] for r in history], "-", label="train loss")
    ax.plot(epochs, [r["train_acc"] for r in history], "m--", label="train acc")
    ax.plot(epochs, [r["test_acc"] for r in history], "g-.", label="test acc")
    ax.set_xlabel("epoch")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save(fig, path)
    plt.close(fig)


def predictions(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...], path: Path, count: int = 32) -> None:
    """A grid of test images titled 'true / predicted'; mistakes in red, shown first."""
    plt = _pyplot()
    wrong = np.flatnonzero(predicted != labels)
    right = np.flatnonzero(predicted == labels)
    pick = np.concatenate([wrong[: count // 2], right])[:count]
    cols = 8
    rows = int(np.ceil(len(pick) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, i in zip(np.ravel(axes), pick):
        ax.imshow(images[i], cmap="gray_r")
        ok = predicted[i] == labels[i]
        ax.set_title(f"{classes[labels[i]]} / {classes[predicted[i]]}", fontsize=7, color="black" if ok else "red")
    fig.suptitle(f"true / predicted: {len(wrong)} of {len(labels)} test images wrong (red)", fontsize=9)
    _save(fig, path)
    plt.close(fig)


def confusion_matrix(matrix: np.ndarray, classes: tuple[str, ...], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = np.log1p(matrix)
    ax.imshow(shown, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6, color="white" if shown[i, j] > shown.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    _save(fig, path)
    plt.close(fig)
