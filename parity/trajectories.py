"""Training trajectories: the frameworks trained side by side from the same init on the same
batches, every weight compared after every step (parity.check --train), and the one step loop
that the data-parallel check (parity/distributed.py) trains with too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from lenet_spec import Variant
from lenet_spec.compare import TRAIN_TOL, TRAIN_UNRELATED, Worst, rel_diff
from lenet_spec.frameworks import NAMES, module
from lenet_spec.mapping import convert
from lenet_spec.recipe import Recipe, default_recipe
from lenet_spec.schedule import epoch_steps


@dataclass
class TrainResult:
    variant: str
    dtype: str
    steps: int
    data: str
    augment: bool
    max_rel_diff: float = 0.0  # over all steps and parameters
    final_max_rel_diff: float = 0.0
    worst_param: str = ""
    first_step_over: int | None = None  # 1-based step where the drift first exceeded the tolerance
    loss_diff: float = 0.0  # |mean training loss torch - paddle| over the run
    eval_rel_diff: float = 0.0  # logits in evaluation mode after the run (BatchNorm: the running statistics)
    drift: list[float] = field(default_factory=list)  # per step
    passed: bool = False


def train_batches_source(
    variant: Variant, steps: int, batch: int, seed: int, mnist_train: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """Training images (uint8) and labels: MNIST's training set for 1x28x28 variants when found,
    else seeded random images, enough for `steps` batches."""
    if mnist_train is not None and variant.input.shape == (1, 28, 28):
        return mnist_train[0], mnist_train[1], "mnist"
    rng = np.random.default_rng([seed, 7])
    n = steps * batch
    c, h, w = variant.input.shape
    images = rng.integers(0, 256, (n, h, w) if c == 1 else (n, c, h, w), dtype=np.uint8)
    return images, rng.integers(0, variant.num_classes, n), "random"


def trajectory(
    backend, framework: str, variant: Variant, recipe: Recipe, seed: int, steps: int, images: np.ndarray, labels: np.ndarray, augment: bool, layout: str
) -> Iterator[dict[str, np.ndarray]]:
    """Train `backend` (a lenet_<framework>.train.Backend holding `images`) `steps` steps of the
    trainers' own schedule (lenet_spec.schedule.epoch_steps), yielding its weights after each
    step in `layout`'s names and layouts ("spec" or a framework's)."""
    step = 0
    for epoch in range(recipe.epochs * 1000):
        for train_step in epoch_steps(len(labels), recipe, seed, epoch, augment, images.shape[-1], variant):
            if step == steps:
                return
            backend.train_step(*train_step)
            step += 1
            weights = backend.weights()
            yield weights if layout == framework else convert(weights, variant, framework, layout)


@dataclass
class Drift:
    """Two trajectories compared step by step: after each, the worst parameter's relative difference."""

    tol: float
    drift: list[float] = field(default_factory=list)  # per step
    worst: Worst = field(default_factory=lambda: Worst(latest=True))  # over the run: its name is the parameter
    first_step_over: int | None = None  # 1-based step where the drift first exceeded `tol`

    def follow(self, pairs: Iterable[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> Drift:
        """Compare every step's weights (a, b: one layout, one order of names); returns self."""
        for a, b in pairs:
            step = Worst()
            for k in a:
                step.add(k, a[k], b[k])
            self.drift.append(step.rel)
            self.worst.note(step.name, step.rel)
            if step.rel > self.tol and self.first_step_over is None:
                self.first_step_over = len(self.drift)
        return self


def run_training_case(variant: Variant, dtype: str, steps: int, seed: int, mnist_train, augment: bool = False, recipe: Recipe | None = None) -> TrainResult:
    """Train every framework side by side from the same init on the same batches with
    `recipe` (default: the variant's, for distorted images with `augment`), comparing every
    weight after every step (in the first framework's layout: torch's parameter names).

    Returns:
        The run's drift; `passed` is judged by TRAIN_TOL in float64 and TRAIN_UNRELATED otherwise.
    """
    recipe = recipe or default_recipe(variant, augment)
    images, labels, source = train_batches_source(variant, steps, recipe.batch_size, seed, mnist_train)
    res = TrainResult(variant.name, dtype, steps, source, augment)
    backends = [module(fw, "train").Backend(variant, recipe, seed, "cpu", dtype) for fw in NAMES]
    for b in backends:
        b.set_train_data(images, labels)
    tol = TRAIN_TOL.get(dtype, TRAIN_UNRELATED)
    runs = [trajectory(b, fw, variant, recipe, seed, steps, images, labels, augment, layout=NAMES[0]) for b, fw in zip(backends, NAMES)]
    drift = Drift(tol).follow(zip(*runs))
    res.drift, res.max_rel_diff, res.worst_param, res.first_step_over = drift.drift, drift.worst.rel, drift.worst.name, drift.first_step_over
    res.final_max_rel_diff = res.drift[-1]
    res.loss_diff = abs(backends[0].running()[0] - backends[1].running()[0])
    res.eval_rel_diff = rel_diff(*(b.predict(images[:256]) for b in backends))[1]  # what the trained models answer
    res.passed = bool(res.first_step_over is None and np.isfinite(res.max_rel_diff) and res.eval_rel_diff <= tol)
    return res


def train_steps(
    framework: str,
    variant_name: str | Variant,
    recipe: Recipe,
    dtype: str,
    steps: int,
    seed: int,
    images: np.ndarray,
    labels: np.ndarray,
    augment: bool,
    world=None,
) -> list[dict[str, np.ndarray]]:
    """Train `steps` steps of the trainers' schedule in `framework` (in a job: this process's
    part of it, `world` a lenet_train.distributed.World) and return the weights after each
    step, in the spec's layout. `variant_name`: a built-in variant's name or a Variant."""
    from lenet_spec import get_variant
    from lenet_train.distributed import World

    variant = get_variant(variant_name)
    backend = module(framework, "train").Backend(variant, recipe, seed, "cpu", dtype, world or World())
    backend.set_train_data(images, labels)
    return list(trajectory(backend, framework, variant, recipe, seed, steps, images, labels, augment, layout="spec"))
