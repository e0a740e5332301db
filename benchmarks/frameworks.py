"""The peers the benchmarks time, framework-free: each framework's pieces come from its bench
module (lenet_torch/bench.py, lenet_paddle/bench.py, through lenet_spec.frameworks), the loops
and the clocks around them are here, written once."""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np

from lenet_spec.frameworks import NAMES, FrameworkMissing, get, module


def bench(framework: str) -> ModuleType:
    """lenet_torch.bench or lenet_paddle.bench.

    Raises:
        FrameworkMissing: the framework is not installed; the message says how to install it.
    """
    try:
        return module(framework, "bench")
    except ImportError as e:  # the package imports, its framework does not
        raise FrameworkMissing(f"{framework} is not importable ({e}); install it: {get(framework).install}") from None


def matmul(n: int, device: str = "cpu"):
    """(a call multiplying two n x n float32 matrices, the library in words): the first installed
    framework's (NAMES' order), else NumPy's BLAS."""
    for framework in NAMES:
        try:
            return bench(framework).matmul(n, device)
        except FrameworkMissing:
            continue
    a, b = np.random.rand(n, n).astype(np.float32), np.random.rand(n, n).astype(np.float32)
    return (lambda: a @ b), "numpy"


def inference_fn(framework: str, variant: str, device: str = "cpu"):
    """(images float32 (N, C, H, W) -> logits as NumPy) for a freshly built model in eval mode."""
    return bench(framework).inference_fn(variant, device)


def tutorial_loop(framework: str, images: np.ndarray, labels: np.ndarray, steps: int, warmup: int, batch_size: int = 16, device: str = "cpu") -> float:
    """Images/s of the loop the tutorials write: a Dataset converting one uint8 image at a time,
    a shuffling DataLoader at batch 16, lenet5, Adam. Steps after `warmup` are timed."""
    fw = bench(framework)
    loader, step = fw.tutorial_step(images, labels, batch_size, device)
    done, start = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                start = time.perf_counter()
            step(x, y)
            done += 1
            if done == warmup + steps:
                break
    fw.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def plain_loop(framework: str, variant: str, images: np.ndarray, labels: np.ndarray, batch_size: int, own_batchnorm: bool = False, device: str = "cpu"):
    """The shortest loop a framework's user writes for the same work as the trainer: the whole
    training set as one float tensor, a random batch of indices, forward, the mean
    cross-entropy, backward, Adam's step. The peer the trainer's own bookkeeping (schedule,
    running loss and accuracy, the recipe's loss and optimizer) is measured against.
    With `own_batchnorm`, the model's BatchNorm layers are the framework's own (bench's native_batchnorm).

    Returns:
        run(steps) -> images/s over that many steps (synchronised before and after).
    """
    rng = np.random.default_rng(0)
    step, sync = bench(framework).plain_step(variant, images, labels, own_batchnorm, device)

    def run(steps: int) -> float:
        batches = [rng.integers(0, len(labels), batch_size) for _ in range(steps)]
        start, loss = time.perf_counter(), None
        for index in batches:
            loss = step(index)
        sync(loss)
        return steps * batch_size / (time.perf_counter() - start)

    return run


def plain_onnx_session(variant: str, path: str, frameworks: tuple[str, ...], device: str = "cpu"):
    """An onnxruntime session, every option at its default but the providers, on what a plain
    export writes for the variant (no clean-up of ours; the first of `frameworks` whose bench
    module has one: torch.onnx.export): the peer of the project's exported file and its tuned
    session. None when none of them has one."""
    for framework in frameworks:
        try:
            bench(framework).plain_onnx_export(variant, path)
            break
        except NotImplementedError:
            continue
    else:
        return None
    import onnxruntime as ort

    from export.runtime import preload_cuda_libraries, providers

    if device == "gpu":
        preload_cuda_libraries(ort)
    sess = ort.InferenceSession(path, providers=providers(device))
    return lambda x: sess.run(None, {"image": x})[0]
