"""torch's part of the data-parallel check (parity.check --train STEPS --world-size N): starting
the job's processes through torch's own launch API, as torchrun would, on loopback."""

from __future__ import annotations

import os


def _entry(rank: int, worker, size: int, folder: str, job: tuple) -> None:
    """One process: the variables torchrun sets, then `worker`."""
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(size)})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    worker(rank, "torch", size, folder, job)


def launch(worker, size: int, folder: str, job: tuple) -> None:
    """Run `worker(rank, "torch", size, folder, job)` (a module-level function) in `size`
    processes started by torch.multiprocessing, and wait; MASTER_ADDR and MASTER_PORT are set.

    Raises:
        Exception: torch's own (ProcessRaisedException, ...) when a process fails.
    """
    import torch.multiprocessing as mp

    mp.start_processes(_entry, args=(worker, size, folder, job), nprocs=size, join=True, start_method="spawn")
