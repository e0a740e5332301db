"""paddle's part of the data-parallel check (parity.check --train STEPS --world-size N): starting
the job's processes through paddle's own launch API, as paddle.distributed.launch would, on
loopback."""

from __future__ import annotations

import os


def _entry(worker, size: int, folder: str, job: tuple) -> None:
    """One process: paddle.distributed.spawn gives no rank argument; the rank is in its variables."""
    worker(int(os.environ.get("PADDLE_TRAINER_ID", "0")), "paddle", size, folder, job)


def launch(worker, size: int, folder: str, job: tuple) -> None:
    """Run `worker(rank, "paddle", size, folder, job)` (a module-level function) in `size`
    processes started by paddle.distributed.spawn (gloo), and wait; MASTER_ADDR and MASTER_PORT
    are set.

    Raises:
        Exception: paddle's own (an Exception holding the traceback text) when a process fails.
    """
    import warnings

    import paddle.distributed as dist

    warnings.filterwarnings("ignore", message="Your model will be trained under CPUONLY mode")  # what we asked for
    dist.spawn(_entry, args=(worker, size, folder, job), nprocs=size, backend="gloo")
