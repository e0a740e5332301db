"""Data-parallel training, the framework-neutral half: who this process is in a job started by
a framework's launcher, which part of every global batch it trains on, and how its shard's loss
is weighted so that the gradient the frameworks average over the processes is the global batch's.

The collectives are the frameworks' own (torch.distributed with DistributedDataParallel,
paddle.distributed with paddle.DataParallel; lenet_torch/train.py, lenet_paddle/train.py);
nothing here sends a byte.

The semantics (docs/TRAINING.md, "Distributed training"):
- `--batch-size` is the global batch: the recipe, the learning rate of every step and the
  accuracy do not depend on the number of processes.
- The spec's (seed, epoch) order cuts the epoch into global batches as for one process; rank r
  trains on the r-th contiguous shard of each (`World.shard`). A batch that does not divide
  evenly gives shards one image apart (the first `n % size` ranks take one more).
- Each framework averages the ranks' gradients; a shard's mean loss is multiplied by
  `World.weight` (its share of the batch times the number of processes; exactly 1 for equal
  shards), so that the average is the gradient of the global batch's mean loss, uneven or not.
- A global batch smaller than the number of processes would leave a rank with nothing to
  train on; such a run is refused before it starts (`check_batches`), not trained differently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from lenet_spec.frameworks import REGISTRY

# How long a process waits for the others at a collective before the job fails (seconds). It
# bounds a hung process; a process that dies is noticed at once (its sockets close). Rank 0
# evaluates and writes checkpoints while the others wait, so it must exceed an epoch's
# evaluation and pictures (seconds for these models).
DEFAULT_TIMEOUT_S = 300

# The variables each framework's launcher sets (rank, world size, local rank), and how to start a job.
LAUNCH_ENV = {fw.name: fw.launch_env for fw in REGISTRY}
LAUNCHERS = {fw.name: fw.launcher for fw in REGISTRY}


class LaunchError(ValueError):
    """The process was started in a way the trainer cannot run as a job; the message is the line to print."""


class PeerLost(RuntimeError):
    """A collective failed: another process of the job ended, hung past the timeout, or cannot be reached."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank `rank` of `size`, `local_rank` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def lead(self) -> bool:
        """Rank 0: the one process that evaluates, logs and writes files."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous part of a global batch of `n`: sizes differ by at most one, the
        first n % size ranks taking the larger (numpy.array_split's cut)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def weight(self, n: int) -> float:
        """The factor on this rank's mean loss for a global batch of `n`: its share of the batch
        times the number of processes, so that the frameworks' average of the ranks' gradients
        is the gradient of the whole batch's mean loss. 1.0 for equal shards."""
        part = self.shard(n)
        return (part.stop - part.start) * self.size / n

    def take_shard(self, index, theta=None, masks=None) -> tuple:
        """This rank's part of one global step (lenet_spec.schedule.Step's index, theta, masks)
        and the weight of its mean loss: (index, theta, masks, weight)."""
        part = self.shard(len(index))
        shard = None if masks is None else {k: v[part] for k, v in masks.items()}
        return index[part], None if theta is None else theta[part], shard, self.weight(len(index))

    def check_batches(self, n: int, batch_size: int) -> None:
        """Every global batch of an epoch of `n` images gives each rank at least one image.

        Raises:
            LaunchError: one does not, naming the batch and the fixes.
        """
        if self.size == 1:
            return
        smallest = min(batch_size, n) if n % batch_size == 0 or n < batch_size else n % batch_size
        if smallest < self.size:
            where = "each batch" if min(batch_size, n) < self.size else f"the last batch of each epoch ({n:,} images in batches of {batch_size})"
            raise LaunchError(
                f"{where} holds {smallest} image(s), fewer than the {self.size} processes, so a process would have none to train on; "
                f"choose a --batch-size (or --limit) that leaves at least {self.size}, or start fewer processes"
            )

    @classmethod
    def from_env(cls, framework: str, environ: dict | None = None) -> "World":
        """The job this process belongs to, from its framework's launcher's variables; one
        process when none are set.

        Raises:
            LaunchError: another framework's launcher started it, or the variables are damaged.
        """
        env = os.environ if environ is None else environ
        rank_var, size_var, local_var = LAUNCH_ENV[framework]
        other = next(fw for fw in LAUNCH_ENV if fw != framework)
        if size_var not in env:
            if int(env.get(LAUNCH_ENV[other][1], "1") or 1) > 1:
                raise LaunchError(f"this process was started by {other}'s launcher; lenet_{framework}.train runs under its own: {LAUNCHERS[framework]}")
            return cls()
        try:
            size, rank = int(env[size_var]), int(env.get(rank_var, "0"))
            local = int(env.get(local_var, rank))
        except ValueError:
            raise LaunchError(
                f"the launcher's {size_var}/{rank_var}/{local_var} are not numbers ({env.get(size_var)!r:.20}, {env.get(rank_var)!r:.20}); start "
                f"the job with {LAUNCHERS[framework]}"
            ) from None
        if not (size >= 1 and 0 <= rank < size and local >= 0):
            raise LaunchError(f"rank {rank} of {size} processes is not a place in a job; start the job with {LAUNCHERS[framework]}")
        return cls(rank, size, local)


def lost(world: World, error: BaseException) -> PeerLost:
    """The one line a process prints when a collective fails under it: the backend's first
    sentence, without gloo's source location ("[.../pair.cc:537] Read error ...: Connection
    reset by peer")."""
    reason = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(error).split())).split(". ")[0][:160] or type(error).__name__
    return PeerLost(f"a collective failed ({reason}): another process of the job ended, hung past --timeout, or cannot be reached; see its output")
