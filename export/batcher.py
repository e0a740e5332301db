"""The micro-batcher of export.serve: requests that arrive together share one onnxruntime call.

The first request waits at most max_wait_s for others that are already being decoded (a request
alone does not wait), up to max_batch images. max_batch 1 turns that off: each request then
runs its own call, concurrently.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .runtime import run

DEFAULT_MAX_BATCH = 64  # images in one onnxruntime call
DEFAULT_MAX_WAIT_MS = 2.0  # how long the first request of a batch waits for others


class Batcher:
    """One model's onnxruntime calls. Requests that arrive while others wait are run together:
    a call takes at most `max_batch` images, and a request's images are never split between
    calls unless it alone has more than `max_batch`. The first request waits for others at
    most `max_wait_s`, and only while others are on their way (`arriving`: read, being
    decoded): a request alone runs at once. With max_batch 1, each request runs its own call,
    concurrently in `pool`."""

    def __init__(self, sess, max_batch: int, max_wait_s: float, pool: ThreadPoolExecutor):
        self.sess, self.max_batch, self.max_wait_s, self.pool = sess, max_batch, max_wait_s, pool
        self.pending: collections.deque[tuple[np.ndarray, asyncio.Future]] = collections.deque()
        self.queued = 0  # images in `pending`
        self.arriving = 0  # requests for this model being decoded: the ones worth waiting for
        self.calls = 0  # onnxruntime calls made, and the images they took: mean batch = images / calls
        self.images = 0
        self._count = threading.Lock()
        self.runner = ThreadPoolExecutor(1, thread_name_prefix="onnxruntime")  # one call at a time; it uses every core itself
        self._wake: asyncio.Event | None = None
        self._more: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.max_batch > 1:
            self._wake, self._more = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.runner.shutdown(wait=False, cancel_futures=True)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._count:
            self.calls += 1
            self.images += len(batch)
        return run(self.sess, batch)

    async def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, classes) for a request's images (N, C, H, W)."""
        loop = asyncio.get_running_loop()
        if self.max_batch <= 1:
            return await loop.run_in_executor(self.pool, self._run, batch)
        futures = []
        for start in range(0, len(batch), self.max_batch):
            future = loop.create_future()
            part = batch[start : start + self.max_batch]
            self.pending.append((part, future))
            self.queued += len(part)
            futures.append(future)
        self._wake.set()
        self._more.set()
        return np.concatenate(await asyncio.gather(*futures))

    def arrived(self) -> None:
        """A request counted in `arriving` has reached the queue or failed: stop waiting for it."""
        self.arriving -= 1
        if self._more is not None:
            self._more.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            deadline = loop.time() + self.max_wait_s
            while self.queued < self.max_batch and self.arriving > 0 and (left := deadline - loop.time()) > 0:
                self._more.clear()
                try:
                    await asyncio.wait_for(self._more.wait(), left)
                except TimeoutError:
                    break
            taken, count = [], 0
            while self.pending and (not taken or count + len(self.pending[0][0]) <= self.max_batch):
                part, future = self.pending.popleft()
                self.queued -= len(part)
                if future.cancelled():  # the client went away while it waited
                    continue
                taken.append((part, future))
                count += len(part)
            if not taken:
                continue
            try:
                logits = await loop.run_in_executor(self.runner, self._run, np.concatenate([part for part, _ in taken]))
            except Exception as e:  # onnxruntime's own error types; each waiting request gets it
                for _, future in taken:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for part, future in taken:
                if not future.done():
                    future.set_result(logits[start : start + len(part)])
                start += len(part)
