"""Training recipes as data: optimizer, learning-rate schedule, loss, epochs, batch size.

The learning rate of every step is computed here (`lr_at`) and set on both frameworks'
optimizers before the step, so the two schedules cannot differ. The optimizers are each
framework's own; `lenet_torch.train` and `lenet_paddle.train` configure them so that their
update rules agree (see their `make_optimizer`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from .layers import Variant
from .safe_pickle import shown

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "onecycle", "lecun1998")
LOSSES = ("cross_entropy", "rbf_map")

# 1998 paper, section II.C: global learning rate per pass (passes 1-2, 3-5, 6-8, 9-12, 13-20),
# relative to the first. The paper scales it per parameter with stochastic diagonal
# Levenberg-Marquardt; here it scales the optimizer's rate.
LECUN1998_PASSES = ((2, 1.0), (5, 0.4), (8, 0.2), (12, 0.1), (20, 0.02))


FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adam"
    lr: float = 1e-3  # peak learning rate
    schedule: str = "constant"
    epochs: int = 5
    batch_size: int = 64
    momentum: float = 0.9  # "momentum": heavy ball, v = m v + g, p -= lr v (torch SGD, paddle Momentum)
    betas: tuple[float, float] = (0.9, 0.999)  # "adam", "adamw"
    eps: float = 1e-8  # "adam", "adamw"
    # "sgd", "momentum", "adam": L2 added to the gradient (coupled); "adamw": decoupled,
    # p -= lr * weight_decay * p before the Adam step (torch.optim.AdamW, paddle.optimizer.AdamW)
    weight_decay: float = 0.0
    step_every: int = 2  # "step": epochs between decays
    gamma: float = 0.1  # "step": decay factor
    warmup: float = 0.25  # "onecycle": fraction of steps spent rising from lr/25
    loss: str = "cross_entropy"
    rbf_j: float = 1.0  # "rbf_map": the constant j of the paper's criterion
    dataset: str = "mnist"
    # Epochs at which "cosine" and "onecycle", whose shape depends on the run's length, begin
    # again over the epochs up to the next restart (or the end): what extending a finished run
    # adds (`extend`). The other schedules depend on the epoch alone and never restart.
    restarts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):  # a recipe may come from a stranger's checkpoint: check types too
            value, kind = getattr(self, f.name), _KINDS[f.name]
            if f.name == "restarts":
                ok = isinstance(value, tuple) and all(isinstance(e, int) and not isinstance(e, bool) for e in value) and list(value) == sorted(set(value))
                ok = ok and (not value or (isinstance(self.epochs, int) and 0 < value[0] and value[-1] < self.epochs))
                if not ok:
                    raise ValueError(f"restarts must be increasing epochs between 1 and epochs - 1, got {shown(value)}")
                continue
            if kind is float:  # both frameworks train in float32 (and paddle's kernels take float32 attributes)
                ok = (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= FLOAT32_MAX
                )  # also False for NaN; an int past float64 never reaches isfinite
            elif kind is tuple:
                ok = isinstance(value, tuple) and len(value) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in value)
            else:
                ok = isinstance(value, kind) and not isinstance(value, bool)
            if not ok:
                what = {
                    float: f"a finite number within float32's range (at most {FLOAT32_MAX:.4g})",
                    int: "a whole number",
                    str: "a name",
                    tuple: "two numbers in [0, 1)",
                }[kind]
                raise ValueError(f"{f.name} must be {what}, got {shown(value)}")
        for value, allowed, what in ((self.optimizer, OPTIMIZERS, "optimizer"), (self.schedule, SCHEDULES, "schedule"), (self.loss, LOSSES, "loss")):
            if value not in allowed:
                raise ValueError(f"unknown {what} {shown(value)}; choose from {', '.join(allowed)}")
        if self.lr <= 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"lr, epochs and batch_size must be positive, got {self.lr}, {self.epochs}, {self.batch_size}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight decay must be 0 or more, got {self.weight_decay}")
        for name, ok, what in (
            ("step_every", self.step_every >= 1, "at least 1"),
            ("gamma", self.gamma > 0, "positive"),
            ("eps", self.eps > 0, "positive"),
            ("momentum", 0 <= self.momentum < 1, "in [0, 1)"),
            ("warmup", 0 <= self.warmup <= 1, "in [0, 1]"),
            ("rbf_j", self.rbf_j > 0, "positive"),
        ):
            if not ok:
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)}")

    # Paddle's momentum, L2-decay and AdamW kernels take these coefficients as float32 attributes,
    # so a float64 paddle run updates with 0.89999998, not 0.9 (measured: weights 8e-9 apart
    # after 2 steps, growing). Both frameworks use the float32-representable value; in float32
    # training this changes nothing.
    @property
    def momentum_coefficient(self) -> float:
        return float(np.float32(self.momentum))

    @property
    def decay_coefficient(self) -> float:
        return float(np.float32(self.weight_decay))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """The recipe stored in a checkpoint (its `to_dict`); ValueError for anything else."""
        if not isinstance(d, dict):
            raise ValueError(f"a recipe is a dict, not {type(d).__name__}")
        unknown = [k for k in d if k not in _KINDS]
        if unknown:
            raise ValueError(f"unknown recipe fields {', '.join(shown(k) for k in unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        d = dict(d)
        for key in ("betas", "restarts"):
            if isinstance(d.get(key), (list, tuple)):
                d[key] = tuple(d[key])
        return cls(**d)

    def with_overrides(self, **changes) -> "Recipe":
        """A copy with the given fields changed; None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_KINDS = {f.name: {"str": str, "int": int, "float": float}.get(str(f.type), tuple) for f in fields(Recipe)}


def extend(recipe: Recipe, epochs: int) -> tuple[Recipe, str]:
    """`recipe` continued to `epochs` epochs, and a line saying what that does to its schedule.

    The epochs already run keep their learning rates. "constant", "step" and "lecun1998" are
    functions of the epoch alone and simply go on. "cosine" and "onecycle" are shaped by the
    run's length, so the added epochs are a new cycle of the same schedule (a warm restart, as
    in SGDR: the rate rises to, or starts from, the recipe's peak again); the restart is kept in
    the recipe, so a resumed or repeated run draws the same rates.

    Raises:
        ValueError: `epochs` is not more than the recipe's.
    """
    if epochs <= recipe.epochs:
        raise ValueError(
            f"--epochs {epochs}: the run is {recipe.epochs} epochs long; extending it takes more epochs (shortening would change the schedule of "
            f"those already run)"
        )
    if recipe.schedule in ("cosine", "onecycle"):
        note = (
            f"extending the run from {recipe.epochs} to {epochs} epochs: its {recipe.schedule} schedule runs again over epochs "
            f"{recipe.epochs + 1}-{epochs} (a warm restart at the peak rate {recipe.lr:g})"
        )
        return replace(recipe, epochs=epochs, restarts=(*recipe.restarts, recipe.epochs)), note
    return replace(recipe, epochs=epochs), f"extending the run from {recipe.epochs} to {epochs} epochs: its {recipe.schedule} schedule goes on as it would have"


def lr_at(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """The learning rate for optimizer step `step` (0-based) of the whole run."""
    epoch = step // steps_per_epoch
    start, end = 0, recipe.epochs  # the cycle (restarts) that holds `step`, for the schedules shaped by the run's length
    for restart in recipe.restarts:
        if epoch >= restart:
            start = restart
        else:
            end = restart
            break
    total = (end - start) * steps_per_epoch
    step -= start * steps_per_epoch
    if recipe.schedule == "constant":
        return recipe.lr
    if recipe.schedule == "step":
        return recipe.lr * recipe.gamma ** (epoch // recipe.step_every)
    if recipe.schedule == "cosine":
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * step / total))
    if recipe.schedule == "onecycle":  # linear warm-up from lr/25, cosine down to lr/1e4
        rise = max(1, int(recipe.warmup * total))
        if step < rise:
            return recipe.lr / 25 + (recipe.lr - recipe.lr / 25) * step / rise
        t = (step - rise) / max(1, total - rise)
        return recipe.lr / 1e4 + (recipe.lr - recipe.lr / 1e4) * 0.5 * (1 + math.cos(math.pi * t))
    if recipe.schedule == "lecun1998":
        for last_pass, factor in LECUN1998_PASSES:
            if epoch < last_pass:
                return recipe.lr * factor
        return recipe.lr * LECUN1998_PASSES[-1][1]
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


# Each variant's default recipe; docs/RESULTS.md gives what they reach.
RECIPES: dict[str, Recipe] = {
    "lenet5": Recipe(optimizer="adam", lr=2e-3, schedule="onecycle", epochs=5, batch_size=64),
    # One-cycle, not the paper's per-pass decay ("lecun1998"), and decoupled weight decay 0.1
    # (AdamW), not L2 on the gradient: measured in both frameworks and over seeds in docs/RESULTS.md.
    "lenet5-1998": Recipe(optimizer="adamw", lr=2e-3, schedule="onecycle", epochs=20, batch_size=64, weight_decay=0.1, loss="rbf_map"),
    "d2l": Recipe(optimizer="sgd", lr=0.9, schedule="constant", epochs=10, batch_size=256, dataset="fashion-mnist"),
    "lenet-caffe": Recipe(optimizer="momentum", lr=0.01, schedule="cosine", epochs=10, batch_size=64, weight_decay=5e-4),
    "cifar-net": Recipe(optimizer="momentum", lr=0.001, schedule="constant", epochs=2, batch_size=4, dataset="cifar10"),
    # d2l's chapter: SGD at lr 1.0 (batch normalization allows the large rate), batch 256, 10 epochs.
    "lenet5-bn": Recipe(optimizer="sgd", lr=1.0, schedule="constant", epochs=10, batch_size=256, dataset="fashion-mnist"),
    "lenet-caffe-dropout": Recipe(optimizer="momentum", lr=0.01, schedule="cosine", epochs=10, batch_size=64, weight_decay=5e-4),  # lenet-caffe's
}


# The time-to-accuracy recipe of `python -m benchmarks`: lenet5's recipe compressed into two
# epochs at a higher peak rate; measured 99.08% MNIST test accuracy after 2 epochs in torch
# (docs/BENCHMARKS.md), against 98.5% for the default recipe's first epoch.
SPEED_RECIPE = Recipe(optimizer="adam", lr=3e-3, schedule="onecycle", epochs=2, batch_size=64)


# A variant's default recipe for training on distorted images (--augment), where it differs:
# the distortions regularise already, and lenet5-1998's AdamW with weight decay 0.1 ends at
# 0.78% there against 0.71% (torch) / 0.69% (paddle) for Adam with L2 5e-4 (docs/RESULTS.md).
AUGMENT_RECIPES: dict[str, Recipe] = {
    "lenet5-1998": replace(RECIPES["lenet5-1998"], optimizer="adam", weight_decay=5e-4),
}


def describe(recipe: Recipe) -> str:
    """The recipe in one line, its fields as the trainers' flags name them."""
    extra = []
    if recipe.optimizer == "momentum":
        extra.append(f"momentum {recipe.momentum:g}")
    if recipe.schedule == "step":
        extra.append(f"x{recipe.gamma:g} every {recipe.step_every} epochs")
    if recipe.loss != "cross_entropy":
        extra.append(f"loss {recipe.loss}")
    if recipe.restarts:
        extra.append(f"restarts at epochs {', '.join(map(str, recipe.restarts))}")
    return (f"--optimizer {recipe.optimizer} --lr {recipe.lr:g} --schedule {recipe.schedule} --epochs {recipe.epochs} --batch-size {recipe.batch_size} "
            f"--weight-decay {recipe.weight_decay:g} --dataset {recipe.dataset}" + "".join(f", {e}" for e in extra))  # fmt: skip


def default_recipe(variant: str | Variant, augment: bool = False) -> Recipe:
    """`variant`'s default recipe; with `augment`, the one for distorted training images.

    A network of one's own (a Variant from a spec file, whose name has no recipe) trains with
    lenet5's recipe on its own data set, with the RBF loss when its output is an RBF layer: a
    start that any LeNet-sized network trains with; its flags change it."""
    name = variant.name if isinstance(variant, Variant) else variant
    if name not in RECIPES and isinstance(variant, Variant):
        rbf = variant.layers[-1].kind == "rbf"
        return replace(RECIPES["lenet5"], dataset=variant.dataset, loss="rbf_map" if rbf else "cross_entropy")
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise ValueError(f"no recipe for variant {name!r}; choose from {', '.join(RECIPES)}") from None
    return AUGMENT_RECIPES.get(name, recipe) if augment else recipe
