"""One epoch of training for any paddle model, and its accuracy, for the report of a ported model
(python -m benchmarks.port_epoch). Mirrors lenet_torch/epoch.py line for line: a diff of the two
shows only framework words, so the two runs differ in the framework and nothing else:

- the same batches in the same order: a NumPy permutation drawn from `seed`;
- the same optimizer rule with the same settings: Adadelta (pytorch/examples' MNIST optimizer) with
  rho and epsilon set on both sides (torch's defaults 0.9 and 1e-6; paddle's rho default is 0.95),
  or the probes' sgd, momentum and adam (lenet_paddle/diff.py, already proven equal by parity.diff);
- the same loss formula: "cross_entropy" for a model returning logits, the probes' cross-entropy from
  the primitives, and "nll" for one returning log-probabilities (pytorch/examples' Net, trained there
  with F.nll_loss), -gather(logp, label).mean(). Neither framework's fused loss is used: paddle 3.3.1's
  cross_entropy and log_softmax clip a log-probability at about -64 (docs/PORTING.md).

Dropout draws from each framework's own generator (seeded from `seed`), so the two runs are not equal
step by step, only comparable in loss and accuracy. No learning-rate schedule: one epoch is the first
epoch of pytorch/examples' StepLR (gamma 0.7 per epoch), whose rate is `lr` throughout.

images: float32 (N, C, H, W) as the model takes them, normalised by the caller (pytorch/examples:
(x - 0.1307) / 0.3081 of pixels in [0, 1]); labels: int64 (N,).
"""

from __future__ import annotations

import numpy as np
import paddle

from .diff import cross_entropy, restore, set_mode, step, tensor
from .diff import optimizer as probe_optimizer
from .diff import seed as seed_generator

OPTIMIZERS = ("adadelta", "sgd", "momentum", "adam")
LOSSES = ("cross_entropy", "nll")
ADADELTA_RHO = 0.9  # torch's default (paddle's: 0.95); set on both sides
ADADELTA_EPSILON = 1e-6


def set_threads(n: int) -> None:
    """The CPU threads paddle's kernels use. Timings compare only at the same number on both sides: torch
    takes one per core by default, paddle one; on a shared 2-core machine torch's two ran a LeNet step
    25 times slower than one (0.26 s against 0.011 s, measured 2026-12-02)."""
    paddle.base.core.set_num_threads(n)


def make_optimizer(model: paddle.nn.Layer, name: str, lr: float):
    """paddle's own optimizer `name` (OPTIMIZERS) over the model's trainable parameters."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer {name!r}: give one of {', '.join(OPTIMIZERS)}")
    if name == "adadelta":
        params = [p for p in model.parameters() if not p.stop_gradient]
        return paddle.optimizer.Adadelta(learning_rate=lr, rho=ADADELTA_RHO, epsilon=ADADELTA_EPSILON, parameters=params)
    return probe_optimizer(model, name, lr)


def loss_of(out: paddle.Tensor, labels: np.ndarray, loss: str) -> paddle.Tensor:
    """The mean loss of a batch: "nll" of log-probabilities, "cross_entropy" of logits."""
    if loss == "nll":
        picked = paddle.take_along_axis(out, tensor(labels.astype(np.int64))[:, None], axis=1).squeeze(1)
        return -picked.mean()
    if loss == "cross_entropy":
        return cross_entropy(out, labels)
    raise ValueError(f"loss {loss!r}: give one of {', '.join(LOSSES)}")


def train_epoch(
    model: paddle.nn.Layer,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch: int = 64,
    lr: float = 1.0,
    optimizer: str = "adadelta",
    loss: str = "cross_entropy",
    seed: int = 0,
) -> list[float]:
    """One pass over `images` in batches of `batch` (the last one smaller), the model in training
    mode; returns each step's loss. The model is left in training mode, its weights trained."""
    if loss not in LOSSES:  # refused before any step
        raise ValueError(f"loss {loss!r}: give one of {', '.join(LOSSES)}")
    opt = make_optimizer(model, optimizer, lr)
    order = np.random.default_rng(seed).permutation(len(images))
    kept = seed_generator(seed)
    set_mode(model, True)
    losses = []
    try:
        for k in range(0, len(order), batch):
            picked = order[k : k + batch]
            value = loss_of(model(tensor(images[picked])), labels[picked], loss)
            value.backward()
            step(opt)
            losses.append(float(value.detach()))
    finally:
        restore(kept)
    return losses


def accuracy(model: paddle.nn.Layer, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    """The fraction of `images` whose largest output is the label, in evaluation mode (left so)."""
    set_mode(model, False)
    right = 0
    with paddle.no_grad():
        for k in range(0, len(images), batch):
            out = model(tensor(images[k : k + batch]))
            right += int((out.argmax(1).numpy() == labels[k : k + batch]).sum())
    return right / max(1, len(images))
