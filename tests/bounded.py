"""Run a command of the project in a child process under a memory bound, and measure it.

The bound is a figure, not a hope: the child's resident memory is read from Linux's
/proc/PID/status every few milliseconds, its high-water mark (VmHWM, the child's own pages; the
ru_maxrss of os.wait4 would count the pytest process it was forked from) is reported, and a child
whose resident memory passes the bound is killed at once, so a memory bomb fails its test in a
fraction of a second instead of taking the machine.

    result = bounded.run(["-m", "export.predict", "model.onnx", str(bomb)], limit_mb=400)
    assert result.returncode == 2 and result.peak_mb < 400, result
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    returncode: int | None  # None: killed for passing the bound or the time limit
    stdout: str
    stderr: str
    peak_mb: float  # the highest VmHWM seen, in MiB
    exceeded: bool  # killed for passing limit_mb
    timed_out: bool  # killed for passing timeout

    def __str__(self) -> str:
        why = " (killed: over the memory bound)" if self.exceeded else " (killed: over the time limit)" if self.timed_out else ""
        return f"exit {self.returncode}{why}, peak {self.peak_mb:.0f} MiB\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}"

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip() and "ccache" not in line and "warnings.warn" not in line]


def _status_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB; (0, 0) once it has no memory (exited, a zombie)."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


def run(
    args: list[str],
    *,
    limit_mb: float,
    timeout: float = 120,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    python: bool = True,
) -> Result:
    """Run `python ARGS` (or ARGS itself with python=False) with the repository importable, and
    kill it the moment its resident memory passes `limit_mb` MiB or `timeout` seconds pass."""
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), environment.get("PYTHONPATH", "")) if p)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    argv = [sys.executable, *args] if python else list(args)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            argv, cwd=cwd, env=environment, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        if stdin is not None:
            child.stdin.write(stdin)
            child.stdin.close()
        peak = 0
        exceeded = timed_out = False
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            rss, hwm = _status_kib(child.pid)
            peak = max(peak, hwm, rss)
            if rss > limit_mb * 1024:
                exceeded = True
            elif time.monotonic() > deadline:
                timed_out = True
            if exceeded or timed_out:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                break
            time.sleep(0.005)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return Result(None if exceeded or timed_out else child.returncode, stdout, stderr, peak / 1024, exceeded, timed_out)
