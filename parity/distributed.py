"""python -m parity.check --train STEPS --world-size N: data-parallel training proven equal to one
process, and across the frameworks.

For each framework the check starts N processes through the framework's own launch API
(torch.multiprocessing.start_processes, paddle.distributed.spawn) on loopback; each joins the
job as the trainers do under torchrun or paddle.distributed.launch (lenet_<fw>.train.
init_distributed, DistributedDataParallel / paddle.DataParallel) and trains STEPS steps of the
trainers' own schedule (lenet_spec.schedule.epoch_steps), every process on its shard of each
global batch. Process 0 keeps every weight after every step; every process keeps its final
weights. The parent then trains the same steps in one process of each framework and compares:

- N processes against one, same framework: within SAME_FRAMEWORK_TOL in float64 (the
  all-reduce adds the shards' gradients in another order than one process's batch sum);
- torch's N processes against paddle's: within the training check's TRAIN_TOL;
- every process's final weights against process 0's: bit for bit (one all-reduce result,
  one optimizer arithmetic);
float32 is reported and judged as the training check judges it (TRAIN_UNRELATED).
"""

from __future__ import annotations

import importlib
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet_spec import Variant, get_variant
from lenet_spec.recipe import Recipe, default_recipe

from lenet_spec.mapping import convert

# float64, N processes against one of the same framework. Measured (lenet5, MNIST, 100 steps,
# 2 processes): see README "Distributed training"; the bound is the 1e-12.
SAME_FRAMEWORK_TOL = {"float64": 1e-12}


@dataclass
class DistResult:
    variant: str
    dtype: str
    steps: int
    world_size: int
    pair: str  # "torch x2 / torch x1"
    tol: float
    max_rel_diff: float = 0.0
    final_max_rel_diff: float = 0.0
    worst_param: str = ""
    first_step_over: int | None = None
    ranks_identical: bool = True
    drift: list[float] = field(default_factory=list)
    passed: bool = False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_steps(framework: str, variant_name: str, recipe: Recipe, dtype: str, steps: int, seed: int, images: np.ndarray, labels: np.ndarray, augment: bool, world=None) -> list[dict[str, np.ndarray]]:
    """Train `steps` steps of the trainers' schedule in `framework` (in a job: this process's
    part of it) and return the weights after each step, in the spec's layout."""
    from lenet_train.distributed import World
    from lenet_spec.schedule import epoch_steps

    variant = get_variant(variant_name)
    backend = importlib.import_module(f"lenet_{framework}.train").Backend(variant, recipe, seed, "cpu", dtype, world or World())
    backend.set_train_data(images, labels)
    out, step = [], 0
    for epoch in range(recipe.epochs * 1000):
        for train_step in epoch_steps(len(labels), recipe, seed, epoch, augment, images.shape[-1], variant):
            if step == steps:
                return out
            backend.train_step(*train_step)
            out.append(convert(backend.weights(), variant, framework, "spec"))
            step += 1
    return out


def _worker(rank: int, framework: str, size: int, folder: str, job: tuple) -> None:
    """One process of the job: join it as the trainers do, train, write what the parent compares."""
    if framework == "torch":
        os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size)})
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    module = importlib.import_module(f"lenet_{framework}.train")
    world = module.init_distributed("cpu", 120)
    rank = world.rank
    history = train_steps(framework, *job, world=world)
    keep = history if rank == 0 else history[-1:]
    first = len(history) - len(keep)
    np.savez(Path(folder) / f"{framework}-{rank}.npz", **{f"{first + i}/{k}": v for i, w in enumerate(keep) for k, v in w.items()})
    module.end_distributed()


def _paddle_worker(framework: str, size: int, folder: str, job: tuple) -> None:
    """paddle.distributed.spawn's entry: it gives no rank argument; the rank is in its variables."""
    _worker(int(os.environ.get("PADDLE_TRAINER_ID", "0")), framework, size, folder, job)


def launch(framework: str, size: int, folder: str, job: tuple, worker=None) -> None:
    """Start `size` processes of `framework` through its own launch API on loopback, and wait.
    `worker(rank, framework, size, folder, job)` (a module-level function; default _worker)
    runs in each; for torch only (the tests give one that breaks a convention).

    Raises:
        RuntimeError: a process failed (the framework's error, one line)."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(free_port())
    try:
        if framework == "torch":
            import torch.multiprocessing as mp

            mp.start_processes(worker or _worker, args=(framework, size, folder, job), nprocs=size, join=True, start_method="spawn")
        else:
            import warnings

            import paddle.distributed as dist

            warnings.filterwarnings("ignore", message="Your model will be trained under CPUONLY mode")  # what we asked for
            dist.spawn(_paddle_worker, args=(framework, size, folder, job), nprocs=size, backend="gloo")
    except Exception as e:  # ProcessRaisedException, Exception(traceback text) ...
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise RuntimeError(f"{framework}'s {size} processes failed: {lines[-1] if lines else type(e).__name__}") from None
    finally:
        os.environ.pop("MASTER_PORT", None)


def read_history(path: Path) -> dict[int, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as f:
        out: dict[int, dict[str, np.ndarray]] = {}
        for key in f.files:
            step, name = key.split("/", 1)
            out.setdefault(int(step), {})[name] = f[key]
    return out


def compare(a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]], res: DistResult) -> DistResult:
    from .check import rel_diff

    for step, (wa, wb) in enumerate(zip(a, b), 1):
        worst = max(((rel_diff(wa[k], wb[k])[1], k) for k in wa), key=lambda t: t[0])
        res.drift.append(worst[0])
        if worst[0] >= res.max_rel_diff or not np.isfinite(worst[0]):
            res.max_rel_diff, res.worst_param = worst
        if worst[0] > res.tol and res.first_step_over is None:
            res.first_step_over = step
    res.final_max_rel_diff = res.drift[-1] if res.drift else float("nan")
    res.passed = bool(len(a) == len(b) == res.steps and res.first_step_over is None and np.isfinite(res.max_rel_diff) and res.ranks_identical)
    return res


def run_distributed_case(variant: Variant, dtype: str, steps: int, seed: int, world_size: int, mnist_train, augment: bool = False) -> list[DistResult]:
    """The three comparisons of one variant and dtype (module docstring)."""
    from .check import TRAIN_TOL, TRAIN_UNRELATED, train_batches_source

    recipe = default_recipe(variant.name, augment)
    images, labels, _ = train_batches_source(variant, steps, recipe.batch_size, seed, mnist_train)
    job = (variant.name, recipe, dtype, steps, seed, images, labels, augment)
    histories, identical = {}, {}
    with tempfile.TemporaryDirectory(prefix="lenet-dist-") as folder:
        for fw in ("torch", "paddle"):
            launch(fw, world_size, folder, job)
            lead = read_history(Path(folder) / f"{fw}-0.npz")
            histories[fw] = [lead[i] for i in sorted(lead)]
            final = histories[fw][-1]
            identical[fw] = all(
                all(np.array_equal(final[k], other[steps - 1][k]) for k in final)
                for other in (read_history(Path(folder) / f"{fw}-{r}.npz") for r in range(1, world_size))
            )
    results = []
    same_tol = SAME_FRAMEWORK_TOL.get(dtype, TRAIN_UNRELATED)
    for fw in ("torch", "paddle"):
        single = train_steps(fw, *job)
        r = DistResult(variant.name, dtype, steps, world_size, f"{fw} x{world_size} / {fw} x1", same_tol, ranks_identical=identical[fw])
        results.append(compare(histories[fw], single, r))
    r = DistResult(variant.name, dtype, steps, world_size, f"torch x{world_size} / paddle x{world_size}", TRAIN_TOL.get(dtype, TRAIN_UNRELATED), ranks_identical=identical["torch"] and identical["paddle"])
    results.append(compare(histories["torch"], histories["paddle"], r))
    return results


HEADER = f"{'variant':<12} {'dtype':<8} {'steps':>5} {'compared':<22} {'bound':>7} {'final rel':>9} {'max rel':>9} {'worst param':<14} {'over at':>7} {'ranks':<9} result"


def format_row(r: DistResult) -> str:
    over = "-" if r.first_step_over is None else str(r.first_step_over)
    ranks = "same" if r.ranks_identical else "DIFFER"
    return (
        f"{r.variant:<12} {r.dtype:<8} {r.steps:>5} {r.pair:<22} {r.tol:>7.0e} {r.final_max_rel_diff:>9.1e} {r.max_rel_diff:>9.1e} {r.worst_param:<14} {over:>7} {ranks:<9} "
        f"{'PASS' if r.passed else 'FAIL'}"
    )
