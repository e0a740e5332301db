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
    """Write `curves_figure` to `path`."""
    plt = _pyplot()
    fig = curves_figure(history, title)
    _save(fig, path)
    plt.close(fig)


def curves_figure(history: list[dict], title: str):
    """Loss (train and test) and accuracy (train and test) per epoch, on two panels with their
    own axes, marked at every epoch so that a one-epoch run shows too; the title names the run
    and its final test accuracy."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train (mean over the epoch)")
    loss_ax.plot(epochs, [r["test_loss"] for r in history], "s--", label="test (at the end of the epoch)")
    loss_ax.set_ylabel("loss (the recipe's criterion)")
    acc_ax.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train (mean over the epoch)")
    acc_ax.plot(epochs, [100 * r["test_acc"] for r in history], "s--", label="test (at the end of the epoch)")
    acc_ax.set_ylabel("accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        if len(epochs) == 1:
            ax.set_xlim(0.5, 1.5)
        ax.margins(y=0.15)
        ax.grid(True, alpha=0.3)
    if history:
        best = max(history, key=lambda r: r["test_acc"])
        acc_ax.annotate(
            f"best {100 * best['test_acc']:.2f}%", (best["epoch"], 100 * best["test_acc"]), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8
        )
        title += f": final test accuracy {100 * history[-1]['test_acc']:.2f}% after {history[-1]['epoch']} epoch{'s' if history[-1]['epoch'] != 1 else ''}"
    fig.suptitle(title, fontsize=10)
    fig.legend(*loss_ax.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def predictions(images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, classes: tuple[str, ...], path: Path, count: int = 32, title: str = "") -> None:
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
        image = images[i]
        ax.imshow(image.transpose(1, 2, 0) if image.ndim == 3 else image, cmap="gray_r")  # colour (C, H, W) as (H, W, C)
        ok = predicted[i] == labels[i]
        ax.set_title(f"{classes[labels[i]]} / {classes[predicted[i]]}", fontsize=7, color="black" if ok else "red")
    fig.suptitle(f"{title}{': ' if title else ''}true / predicted; {len(wrong):,} of {len(labels):,} test images wrong (red, shown first)", fontsize=9)
    _save(fig, path)
    plt.close(fig)


def confusion_matrix(matrix: np.ndarray, classes: tuple[str, ...], path: Path, title: str = "") -> None:
    """Test-set counts, true class by row, predicted by column (log colour scale), titled with
    the run and its accuracy."""
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
    accuracy = np.trace(matrix) / max(1, matrix.sum())
    ax.set_title(
        f"{title}{': ' if title else ''}test confusion, accuracy {100 * accuracy:.2f}% ({matrix.sum() - np.trace(matrix):,} of {matrix.sum():,} wrong)",
        fontsize=9,
    )
    _save(fig, path)
    plt.close(fig)
