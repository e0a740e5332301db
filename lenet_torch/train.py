"""python -m lenet_torch.train: train a LeNet in PyTorch. Mirrors lenet_paddle/train.py.

The epoch loop, metrics, logging, checkpoint policy and flags live in lenet_train, written
once; this file holds only what PyTorch does: the device, the optimizer, one step.
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a file (paddle.distributed.launch runs files, not modules): run the module
    import runpy
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parents[1])
    runpy.run_module("lenet_torch.train", run_name="__main__", alter_sys=True)
    raise SystemExit(0)

if __name__ == "__main__":  # a command: a Ctrl-C while torch is imported below ends in one line
    from lenet_spec.cli import interrupts_quietly

    interrupts_quietly()

import os
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

import lenet_spec
from lenet_spec.checkpoint import CheckpointError, atomic_write, envelope, misfit
from lenet_spec.cli import no_gpu
from lenet_spec.recipe import Recipe
from lenet_spec.safe_pickle import shown
from lenet_train.distributed import DEFAULT_TIMEOUT_S, World, lost

from .bridge import load_state_numpy, state_numpy
from .checkpoint import FRAMEWORK, load
from .model import LeNet, build


def gpu_problem() -> str | None:
    """None when torch sees a CUDA GPU, else the project's one line saying why not."""
    if torch.cuda.is_available():
        return None
    return no_gpu("torch", torch.__version__, torch.version.cuda)


def pick_device(name: str, world: World = World()) -> torch.device:
    """'cpu', 'gpu' or 'auto' -> a torch device (in a job, the GPU of the process's local rank);
    ValueError when a GPU is asked for and absent."""
    if name == "gpu" and gpu_problem():
        raise ValueError(gpu_problem())
    if name in ("gpu", "auto") and torch.cuda.is_available():
        return torch.device("cuda", world.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
    """Join the job torchrun started (its RANK/WORLD_SIZE/MASTER_* variables): torch.distributed
    over nccl for GPUs, gloo for the CPU, with a timeout on every collective. One process: World()."""
    world = World.from_env("torch")
    if world.size > 1:
        backend = "nccl" if pick_device(device, world).type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(pick_device(device, world))
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return world


def all_sum(world: World, values, device: torch.device | None = None) -> np.ndarray:
    """`values` summed over the job's processes (torch.distributed.all_reduce, float64), which
    also makes it the job's barrier; as they are with one process.

    Raises:
        PeerLost: another process ended, or hung past the timeout."""
    if world.size == 1:
        return np.asarray(values, np.float64)
    device = device or (torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu"))
    t = torch.tensor(np.asarray(values, np.float64), device=device)
    try:
        dist.all_reduce(t)
    except RuntimeError as e:  # gloo and nccl raise DistBackendError, a RuntimeError
        raise lost(world, e) from None
    return t.cpu().numpy()


def end_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def make_optimizer(model: LeNet, recipe: Recipe) -> torch.optim.Optimizer:
    """torch's optimizer for the recipe; weight decay is L2 added to the gradient, or decoupled
    for adamw, as in paddle.

    foreach=True: one multi-tensor call per operation instead of one per parameter (the CPU
    default is per parameter); the same arithmetic, bit for bit (tests/test_train.py), and a
    lenet5 step 14.8 ms against 15.7 ms on one CPU thread (docs/BENCHMARKS.md). Not
    fused=True: see there. Paddle's multi-tensor Adam is another arithmetic, so paddle keeps
    its per-parameter update (lenet_paddle.train.make_optimizer)."""
    params = list(model.parameters())
    decay = recipe.decay_coefficient
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, weight_decay=decay, foreach=True)
    if recipe.optimizer == "momentum":  # v = m v + g; p -= lr v  (paddle.optimizer.Momentum)
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum_coefficient, weight_decay=decay, foreach=True)
    if recipe.optimizer == "adamw":  # p -= lr wd p, then Adam  (paddle.optimizer.AdamW)
        return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=decay, foreach=True)
    return torch.optim.Adam(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps, weight_decay=decay, foreach=True)


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """Mean loss. rbf_map is the 1998 paper's E = y_D + log(exp(-j) + sum_i exp(-y_i)), y = -logits."""
    if recipe.loss == "cross_entropy":
        return F.cross_entropy(logits, labels)
    reject = torch.full((logits.shape[0], 1), -recipe.rbf_j, dtype=logits.dtype, device=logits.device)
    return (torch.logsumexp(torch.cat([logits, reject], 1), 1) - logits.gather(1, labels.unsqueeze(1)).squeeze(1)).mean()


class Backend:
    """One model, its optimizer and the training set on the device."""

    framework = FRAMEWORK
    suffix = ".pt"

    def __init__(self, variant: lenet_spec.Variant, recipe: Recipe, seed: int, device: str = "cpu", dtype: str = "float32", world: World = World()):
        """In a job (`world`, from init_distributed), the model trains wrapped in
        DistributedDataParallel, which averages the ranks' gradients in backward; `self.model`
        stays the plain module (checkpoints, evaluation)."""
        self.variant, self.recipe, self.dtype, self.world = variant, recipe, getattr(torch, dtype), world
        self.device = pick_device(device, world)
        self.model = build(variant, seed=seed, dtype=dtype).to(self.device)
        self.net = self.model
        if world.size > 1:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = make_optimizer(self.model, recipe)
        self.reset_running()

    def describe(self) -> str:
        job = f", {self.world.size} processes ({dist.get_backend()})" if self.world.size > 1 else ""
        return f"torch {torch.__version__} on {self.device}{job}"

    def set_train_data(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Hold the whole training set (uint8 (N, H, W) or (N, C, H, W)) on the device as the models' input: float in [0, 1]."""
        x = torch.from_numpy(images).to(self.device).to(self.dtype).div_(255)
        self.images = x.unsqueeze(1) if x.ndim == 3 else x  # (N, C, H, W)
        self.labels = torch.from_numpy(labels).to(self.device)

    def reset_running(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # on the device: no sync per step
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.seen = 0

    def running(self) -> tuple[float, float]:
        """Mean loss and accuracy since the last reset, of this process's shards (one device sync)."""
        return float(self.loss_sum) / max(1, self.seen), int(self.correct) / max(1, self.seen)

    def totals(self) -> np.ndarray:
        """(loss sum, correct, images) since the last reset, of this process's shards."""
        return np.array([float(self.loss_sum), int(self.correct), self.seen], np.float64)

    def all_sum(self, values) -> np.ndarray:
        """`values` summed over the job's processes; as they are with one process."""
        return all_sum(self.world, values, self.device)

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
        except RuntimeError as e:  # gloo and nccl raise DistBackendError, a RuntimeError
            raise lost(self.world, e) from None

    def _step(self, index: np.ndarray, lr: float, theta: np.ndarray | None, masks: dict[str, np.ndarray] | None, weight: float) -> None:
        idx = torch.from_numpy(index).to(self.device)
        x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
        if theta is not None:
            theta = torch.from_numpy(theta).to(self.device, self.dtype)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        self.model.set_dropout_masks(masks)
        logits = self.net(x)
        loss = loss_fn(logits, y, self.recipe)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * weight if weight != 1.0 else loss).backward()  # DDP averages the ranks' gradients
        self.optimizer.step()
        with torch.no_grad():
            self.loss_sum += loss.detach().double() * len(index)
            self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(index)

    def predict(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Logits (N, classes) as float64 for uint8 images (N, H, W) or (N, C, H, W)."""
        self.model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = torch.from_numpy(images[i : i + batch_size]).to(self.device).to(self.dtype).div_(255)
                x = x.unsqueeze(1) if x.ndim == 3 else x
                out.append(self.model(x).double().cpu().numpy())
        return np.concatenate(out)

    def weights(self) -> dict[str, np.ndarray]:
        return state_numpy(self.model)

    def save(self, path: str | os.PathLike, **extra: Any) -> None:
        """A checkpoint with weights, optimizer state and RNG state, written atomically."""
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        payload = envelope(
            FRAMEWORK, self.variant, state, framework_version=str(torch.__version__),
            optimizer=self.optimizer.state_dict(), rng_state=torch.get_rng_state(), **extra,
        )  # fmt: skip
        atomic_write(path, lambda tmp: torch.save(payload, tmp))

    def restore(self, path: str | os.PathLike) -> dict[str, Any]:
        """Load weights, optimizer and RNG state from a checkpoint of this framework; returns its
        envelope. The optimizer state is checked against the parameters first (a stranger's
        moment of another shape fails only at the first step, deep in torch)."""
        ckpt = load(path, self.variant)
        if "optimizer" not in ckpt.meta:
            raise CheckpointError(f"{path}: holds no optimizer state; it cannot be resumed")
        problem = self.optimizer_misfit(ckpt.meta["optimizer"])
        if problem:
            raise CheckpointError(f"{path}: its optimizer state does not fit this run's {self.variant.name} ({problem}); it cannot be resumed")
        try:
            load_state_numpy(self.model, ckpt.state)
            self.optimizer.load_state_dict(ckpt.meta["optimizer"])
            torch.set_rng_state(torch.as_tensor(ckpt.meta["rng_state"]))
        except Exception as e:  # torch raises ValueError, KeyError, RuntimeError... for state that does not fit
            raise CheckpointError(f"{path}: its state does not fit this run ({type(e).__name__}: {' '.join(str(e).split())[:150]})") from None
        return ckpt.meta

    def optimizer_misfit(self, state: Any) -> str:
        """'' when `state` is an optimizer state_dict for this model: each entry a parameter's
        index, each tensor in it of that parameter's shape and dtype, `step` a scalar count."""
        names, params = zip(*self.model.named_parameters())
        if not (isinstance(state, dict) and isinstance(state.get("state"), dict) and isinstance(state.get("param_groups"), list)):
            return "not a torch optimizer state_dict"
        for index, entry in state["state"].items():
            if not (type(index) is int and 0 <= index < len(params) and isinstance(entry, dict)):
                return f"entry {shown(index)} is no parameter's"
            for key, value in entry.items():
                name = f"{names[index]} {shown(key)}"
                if key == "step":
                    count = value.item() if isinstance(value, torch.Tensor) and value.shape == () and not value.is_complex() else value
                    if not (type(count) in (int, float) and 0 <= count < 2**53):
                        return f"{name} is {shown(value)}, not a step count"
                elif not (key == "momentum_buffer" and value is None):
                    problem = misfit(name, value, tuple(params[index].shape), str(params[index].dtype).removeprefix("torch."))
                    if problem:
                        return problem
        return ""


def main(argv: list[str] | None = None) -> int:
    from lenet_train.cli import train_main

    return train_main(FRAMEWORK, argv)


if __name__ == "__main__":
    from lenet_spec.cli import run

    run(main, "lenet_torch.train")
