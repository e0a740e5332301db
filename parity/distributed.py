"""python -m parity.check --train STEPS --world-size N: data-parallel training proven equal to one
process, and across the frameworks.

For each framework the check starts N processes through the framework's own launch API
(lenet_<fw>.dist_check: torch.multiprocessing.start_processes, paddle.distributed.spawn) on
loopback; each joins the job as the trainers do under torchrun or paddle.distributed.launch
(lenet_<fw>.train.init_distributed, DistributedDataParallel / paddle.DataParallel) and trains
STEPS steps of the trainers' own schedule (parity.trajectories, the training check's step loop),
every process on its shard of each global batch. Process 0 keeps every weight after every step;
every process keeps its final weights. The parent then trains the same steps in one process of
each framework and compares:

- N processes against one, same framework: within SAME_FRAMEWORK_TOL in float64 (the
  all-reduce adds the shards' gradients in another order than one process's batch sum);
- torch's N processes against paddle's: within the training check's TRAIN_TOL;
- every process's final weights against process 0's: bit for bit (one all-reduce result,
  one optimizer arithmetic);
float32 is reported and judged as the training check judges it (TRAIN_UNRELATED).
"""

from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet_spec import Variant
from lenet_spec.compare import SAME_FRAMEWORK_TOL, TRAIN_TOL, TRAIN_UNRELATED
from lenet_spec.frameworks import NAMES, module
from lenet_spec.recipe import default_recipe

from .trajectories import Drift, train_batches_source, train_steps

__all__ = ["SAME_FRAMEWORK_TOL", "DistResult", "compare", "launch", "read_history", "run_distributed_case", "train_steps"]


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


def _worker(rank: int, framework: str, size: int, folder: str, job: tuple) -> None:
    """One process of the job: join it as the trainers do, train, write what the parent compares."""
    train = module(framework, "train")
    world = train.init_distributed("cpu", 120)
    rank = world.rank
    history = train_steps(framework, *job, world=world)
    keep = history if rank == 0 else history[-1:]
    first = len(history) - len(keep)
    np.savez(Path(folder) / f"{framework}-{rank}.npz", **{f"{first + i}/{k}": v for i, w in enumerate(keep) for k, v in w.items()})
    train.end_distributed()


def launch(framework: str, size: int, folder: str, job: tuple, worker=None) -> None:
    """Start `size` processes of `framework` through its own launch API on loopback, and wait.
    `worker(rank, framework, size, folder, job)` (a module-level function; default _worker)
    runs in each (the tests give one that breaks a convention).

    Raises:
        RuntimeError: a process failed (the framework's error, one line)."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(free_port())
    try:
        module(framework, "dist_check").launch(worker or _worker, size, folder, job)
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
    """Two runs' weights after every step (spec layout), step by step, into `res` (judged by res.tol)."""
    drift = Drift(res.tol).follow(zip(a, b))
    res.drift, res.max_rel_diff, res.worst_param, res.first_step_over = drift.drift, drift.worst.rel, drift.worst.name, drift.first_step_over
    res.final_max_rel_diff = res.drift[-1] if res.drift else float("nan")
    res.passed = bool(len(a) == len(b) == res.steps and res.first_step_over is None and np.isfinite(res.max_rel_diff) and res.ranks_identical)
    return res


def run_distributed_case(variant: Variant, dtype: str, steps: int, seed: int, world_size: int, mnist_train, augment: bool = False) -> list[DistResult]:
    """The three comparisons of one variant and dtype (module docstring)."""
    recipe = default_recipe(variant, augment)
    images, labels, _ = train_batches_source(variant, steps, recipe.batch_size, seed, mnist_train)
    job = (variant, recipe, dtype, steps, seed, images, labels, augment)
    histories, identical = {}, {}
    with tempfile.TemporaryDirectory(prefix="lenet-dist-") as folder:
        for fw in NAMES:
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
    for fw in NAMES:
        single = train_steps(fw, *job)
        r = DistResult(variant.name, dtype, steps, world_size, f"{fw} x{world_size} / {fw} x1", same_tol, ranks_identical=identical[fw])
        results.append(compare(histories[fw], single, r))
    a, b = NAMES
    r = DistResult(
        variant.name,
        dtype,
        steps,
        world_size,
        f"{a} x{world_size} / {b} x{world_size}",
        TRAIN_TOL.get(dtype, TRAIN_UNRELATED),
        ranks_identical=all(identical.values()),
    )
    results.append(compare(histories[a], histories[b], r))
    return results
