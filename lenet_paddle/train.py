"""python -m lenet_paddle.train: train a LeNet in PaddlePaddle. Mirrors lenet_torch/train.py.

The epoch loop, metrics, logging, checkpoint policy and flags live in lenet_train, written
once; this file holds only what PaddlePaddle does: the device, the optimizer, one step.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a file (paddle.distributed.launch runs files, not modules): run the module
    import runpy
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    runpy.run_module("lenet_paddle.train", run_name="__main__", alter_sys=True)
    raise SystemExit(0)

if __name__ == "__main__":  # a command: a Ctrl-C while paddle is imported below ends in one line
    from lenet_spec.cli import interrupts_quietly

    interrupts_quietly()

import os
from typing import Any

import numpy as np
import paddle
import paddle.distributed as dist
import paddle.nn.functional as F

import lenet_spec
from lenet_spec.checkpoint import CheckpointError, atomic_write, envelope, misfit
from lenet_spec.cli import no_gpu
from lenet_spec.recipe import Recipe
from lenet_spec.safe_pickle import shown
from lenet_train.distributed import DEFAULT_TIMEOUT_S, World, lost

from .bridge import load_state_numpy, state_numpy
from .checkpoint import FRAMEWORK, load
from .model import LeNet, build


def has_gpu() -> bool:
    return paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0


def gpu_problem() -> str | None:
    """None when paddle sees a CUDA GPU, else the project's one line saying why not."""
    if has_gpu():
        return None
    return no_gpu("paddle", paddle.__version__, paddle.version.cuda() if paddle.is_compiled_with_cuda() else None)


def pick_device(name: str, world: World = World()) -> str:
    """'cpu', 'gpu' or 'auto' -> paddle's device ('cpu', 'gpu:0'; in a job, the GPU of the
    process's local rank), made current; ValueError when a GPU is asked for and absent."""
    if name == "gpu" and gpu_problem():
        raise ValueError(gpu_problem())
    if name in ("gpu", "auto") and has_gpu():
        paddle.set_device(f"gpu:{world.local_rank % paddle.device.cuda.device_count()}")
    else:
        paddle.set_device("cpu")
    return paddle.device.get_device()


def init_distributed(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
    """Join the job paddle.distributed.launch (or spawn) started (its PADDLE_TRAINER_ID/
    PADDLE_TRAINERS_NUM/PADDLE_MASTER variables): paddle.distributed over nccl for GPUs, gloo for
    the CPU. One process: World().

    The timeout: paddle takes it from PADDLE_PG_TIMEOUT (milliseconds), for nccl; its gloo
    process group takes none (a process that dies is still noticed at once: its sockets close)."""
    world = World.from_env("paddle")
    if world.size > 1:
        gpu = device in ("gpu", "auto") and has_gpu()
        os.environ.setdefault("PADDLE_PG_TIMEOUT", str(int(timeout_s * 1000)))
        os.environ["PADDLE_DISTRI_BACKEND"] = "nccl" if gpu else "gloo"  # paddle's 'auto' takes nccl whenever compiled with CUDA
        pick_device(device, world)
        dist.init_parallel_env()
    return world


def all_sum(world: World, values) -> np.ndarray:
    """`values` summed over the job's processes (paddle.distributed.all_reduce, float64), which
    also makes it the job's barrier; as they are with one process.

    Raises:
        PeerLost: another process ended, or hung past the timeout."""
    if world.size == 1:
        return np.asarray(values, np.float64)
    t = paddle.to_tensor(np.asarray(values, np.float64))
    try:
        dist.all_reduce(t)
    except (RuntimeError, OSError) as e:
        raise lost(world, e) from None
    return t.numpy()


def end_distributed() -> None:
    """Nothing to do: paddle's process group ends with the process."""


def make_optimizer(model: LeNet, recipe: Recipe) -> paddle.optimizer.Optimizer:
    """paddle's optimizer for the recipe; a float weight_decay is L2Decay, added to the gradient as in
    torch, except for adamw, whose decay is decoupled, as in torch.optim.AdamW.

    Per parameter, not use_multi_tensor=True: paddle's merged Adam is another arithmetic
    (weights 8e-7 apart after 40 lenet5 steps; docs/BENCHMARKS.md), unlike torch's foreach."""
    params = model.parameters()
    decay = recipe.decay_coefficient or None
    if recipe.optimizer == "sgd":
        return paddle.optimizer.SGD(learning_rate=recipe.lr, parameters=params, weight_decay=decay)
    if recipe.optimizer == "momentum":  # v = m v + g; p -= lr v  (torch SGD with momentum, dampening 0)
        return paddle.optimizer.Momentum(learning_rate=recipe.lr, momentum=recipe.momentum_coefficient, parameters=params, weight_decay=decay)
    beta1, beta2 = recipe.betas
    if recipe.optimizer == "adamw":  # p -= lr wd p, then Adam  (torch.optim.AdamW); a float coefficient, not None
        return paddle.optimizer.AdamW(
            learning_rate=recipe.lr, beta1=beta1, beta2=beta2, epsilon=recipe.eps, parameters=params, weight_decay=recipe.decay_coefficient
        )
    return paddle.optimizer.Adam(learning_rate=recipe.lr, beta1=beta1, beta2=beta2, epsilon=recipe.eps, parameters=params, weight_decay=decay)


def loss_fn(logits: paddle.Tensor, labels: paddle.Tensor, recipe: Recipe) -> paddle.Tensor:
    """Mean loss. rbf_map is the 1998 paper's E = y_D + log(exp(-j) + sum_i exp(-y_i)), y = -logits."""
    if recipe.loss == "cross_entropy":
        return F.cross_entropy(logits, labels)
    reject = paddle.full([logits.shape[0], 1], -recipe.rbf_j, dtype=logits.dtype)
    return (paddle.logsumexp(paddle.concat([logits, reject], 1), 1) - paddle.take_along_axis(logits, labels.unsqueeze(1), 1).squeeze(1)).mean()


class Backend:
    """One model, its optimizer and the training set on the device."""

    framework = FRAMEWORK
    suffix = ".pdparams"

    def __init__(self, variant: lenet_spec.Variant, recipe: Recipe, seed: int, device: str = "cpu", dtype: str = "float32", world: World = World()):
        """In a job (`world`, from init_distributed), the model trains wrapped in
        paddle.DataParallel, which averages the ranks' gradients in backward; `self.model`
        stays the plain layer (checkpoints, evaluation)."""
        self.variant, self.recipe, self.dtype, self.world = variant, recipe, dtype, world
        self.device = pick_device(device, world)
        self.model = build(variant, seed=seed, dtype=dtype)
        self.net = self.model
        if world.size > 1:
            self.net = paddle.DataParallel(self.model)
        self.optimizer = make_optimizer(self.model, recipe)
        self.reset_running()

    def describe(self) -> str:
        job = f", {self.world.size} processes ({os.environ.get('PADDLE_DISTRI_BACKEND')})" if self.world.size > 1 else ""
        return f"paddle {paddle.__version__} on {self.device}{job}"

    def set_train_data(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Hold the whole training set (uint8 (N, H, W) or (N, C, H, W)) on the device as the models' input: float in [0, 1]."""
        x = paddle.to_tensor(images).astype(self.dtype) / 255
        self.images = x.unsqueeze(1) if x.ndim == 3 else x  # (N, C, H, W)
        self.labels = paddle.to_tensor(labels)

    def reset_running(self) -> None:
        self.loss_sum = paddle.zeros([], dtype="float64")  # on the device: no sync per step
        self.correct = paddle.zeros([], dtype="int64")
        self.seen = 0

    def running(self) -> tuple[float, float]:
        """Mean loss and accuracy since the last reset, of this process's shards (one device sync)."""
        return float(self.loss_sum) / max(1, self.seen), int(self.correct) / max(1, self.seen)

    def totals(self) -> np.ndarray:
        """(loss sum, correct, images) since the last reset, of this process's shards."""
        return np.array([float(self.loss_sum), int(self.correct), self.seen], np.float64)

    def all_sum(self, values) -> np.ndarray:
        """`values` summed over the job's processes; as they are with one process."""
        return all_sum(self.world, values)

    def train_step(self, index: np.ndarray, lr: float, theta: np.ndarray | None = None, masks: dict[str, np.ndarray] | None = None) -> None:
        """One optimizer step on the training images `index`, distorted by `theta` if given, its
        Dropout layers keeping the units of `masks` (lenet_spec.schedule.dropout_masks). In a job,
        `index` is the global batch and this process trains on its shard (lenet_train.distributed).

        Raises:
            PeerLost: in a job, another process ended or hung past the timeout."""
        if self.world.size == 1:
            return self._step(index, lr, theta, masks, 1.0)
        index, theta, masks, weight = self.world.take_shard(index, theta, masks)
        try:
            self._step(index, lr, theta, masks, weight)
        except (RuntimeError, OSError) as e:
            raise lost(self.world, e) from None

    def _step(self, index: np.ndarray, lr: float, theta: np.ndarray | None, masks: dict[str, np.ndarray] | None, weight: float) -> None:
        idx = paddle.to_tensor(index)
        x, y = paddle.index_select(self.images, idx, 0), paddle.index_select(self.labels, idx, 0)
        if theta is not None:
            theta = paddle.to_tensor(theta).astype(self.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        self.optimizer.set_lr(lr)
        self.model.train()
        self.model.set_dropout_masks(masks)
        logits = self.net(x)
        loss = loss_fn(logits, y, self.recipe)
        self.optimizer.clear_grad(set_to_zero=False)
        (loss * weight if weight != 1.0 else loss).backward()  # DataParallel averages the ranks' gradients
        self.optimizer.step()
        with paddle.no_grad():
            self.loss_sum += loss.detach().astype("float64") * len(index)
            self.correct += (logits.argmax(1) == y).astype("int64").sum()
        self.seen += len(index)

    def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Logits (N, classes) as float64 for uint8 images (N, H, W) or (N, C, H, W)."""
        self.model.eval()
        out = []
        with paddle.no_grad():
            for i in range(0, len(images), batch_size):
                x = paddle.to_tensor(images[i : i + batch_size]).astype(self.dtype) / 255
                x = x.unsqueeze(1) if x.ndim == 3 else x
                out.append(self.model(x).astype("float64").numpy())
        return np.concatenate(out)

    def weights(self) -> dict[str, np.ndarray]:
        return state_numpy(self.model)

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """A checkpoint with weights, optimizer state and RNG state, written atomically."""
        state = dict(self.model.state_dict())
        payload = envelope(
            FRAMEWORK, self.variant, state, framework_version=str(paddle.__version__),
            optimizer=self.optimizer_state(), rng_state=[tuple(s.__getstate__()) for s in paddle.get_rng_state()], **extra,
        )  # fmt: skip
        atomic_write(path, lambda tmp: paddle.save(payload, tmp))

    def optimizer_state(self, state: dict | None = None) -> dict:
        """The optimizer's state keyed by the model's parameter names ("c1.weight_velocity_0"),
        not paddle's process-global ones ("create_parameter_3.w_0_velocity_0"); with `state`,
        the reverse, for loading."""
        names = {p.name: n for n, p in self.model.named_parameters()}
        if state is not None:
            names = {n: internal for internal, n in names.items()}
        state = self.optimizer.state_dict() if state is None else state
        out = {}
        for key, value in state.items():
            owner = owner_of(key, names)
            out[names[owner] + key[len(owner) :] if owner else key] = value
        return out

    def restore(self, path: str | os.PathLike) -> dict[str, Any]:
        """Load weights, optimizer and RNG state from a checkpoint of this framework; returns its
        envelope. The optimizer state is checked against the parameters first (a stranger's
        moment of another shape fails only at the first step, deep in paddle)."""
        ckpt = load(path, self.variant)
        if "optimizer" not in ckpt.meta:
            raise CheckpointError(f"{path}: holds no optimizer state; it cannot be resumed")
        problem = self.optimizer_misfit(ckpt.meta["optimizer"])
        if problem:
            raise CheckpointError(f"{path}: its optimizer state does not fit this run's {self.variant.name} ({problem}); it cannot be resumed")
        try:
            load_state_numpy(self.model, ckpt.state)
            self.optimizer.set_state_dict(self.optimizer_state(ckpt.meta["optimizer"]))
            paddle.set_rng_state([generator_state(s) for s in ckpt.meta["rng_state"]])
        except Exception as e:  # paddle raises ValueError, KeyError, TypeError... for state that does not fit
            raise CheckpointError(f"{path}: its state does not fit this run ({type(e).__name__}: {' '.join(str(e).split())[:150]})") from None
        return ckpt.meta

    def optimizer_misfit(self, state: Any) -> str:
        """'' when `state` (optimizer_state's, keyed by parameter names) fits this model: each
        accumulator of a parameter's shape and dtype, the beta powers (Adam's step counters)
        one float each."""
        params = dict(self.model.named_parameters())
        if not isinstance(state, dict):
            return f"{shown(state)}, not a dict of accumulators"
        for key, value in state.items():
            owner = owner_of(key, params) if isinstance(key, str) else None
            if owner is None:
                continue  # not a parameter's (LR_Scheduler); paddle ignores what it does not know
            p = params[owner]
            if "_pow_acc_" in key:  # a beta power: one float
                dtype = str(getattr(value, "dtype", ""))
                problem = misfit(key, value, (1,), dtype if dtype in ("float32", "float64") else "float32", "a step counter's")
            else:
                problem = misfit(key, value, tuple(p.shape), str(p.dtype).removeprefix("paddle."))
            if problem:
                return problem
        return ""


def owner_of(key: str, names) -> str | None:
    """The parameter name among `names` that accumulator `key` ("c1.weight_moment1_0") belongs to."""
    return max((k for k in names if key.startswith(k + "_")), key=len, default=None)


def generator_state(state) -> paddle.base.libpaddle.GeneratorState:
    """paddle's RNG state from the plain (device, seed, offset, engine) tuple a checkpoint keeps.

    Checkpoints store `GeneratorState.__getstate__()`, not the pybind object, so that reading
    them needs no paddle class (lenet_spec.safe_pickle; older files' objects read as the same
    tuple). The tuple is checked before paddle's C++ parses it, as pickle would, through
    __setstate__ on an empty instance.
    """
    from lenet_spec.safe_pickle import rng_state

    plain = rng_state(state)
    cls = paddle.base.libpaddle.GeneratorState
    restored = cls.__new__(cls)
    restored.__setstate__(plain)
    return restored


def main(argv: list[str] | None = None) -> int:
    from lenet_train.cli import train_main

    return train_main(FRAMEWORK, argv)


if __name__ == "__main__":
    from lenet_spec.cli import run

    run(main, "lenet_paddle.train")
