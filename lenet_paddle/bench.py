"""What benchmarks times in PaddlePaddle: a GEMM, inference calls, the tutorial-style loop's
pieces, the plain loop's step, the framework's own BatchNorm and a plain ONNX export. Each on the
CPU or the GPU (`device`: 'cpu' or 'gpu'); the clocks and the loops around them are benchmarks'.

Mirrors lenet_torch/bench.py: same functions, framework words only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from .model import BatchNorm, LeNet, activate, build


def synchronize() -> None:
    """Wait for the GPU's queued work (no-op on the CPU): a clock read before it measures the queueing only."""
    if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count():
        paddle.device.synchronize()


def on(device: str):
    """paddle places new tensors on its current device: that device for 'cpu' or 'gpu', made current."""
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    return paddle.device.get_device()


def matmul(n: int, device: str = "cpu"):
    """(a call multiplying two n x n float32 matrices and waiting for it, the library in words)."""
    on(device)
    a, b = paddle.rand([n, n]), paddle.rand([n, n])
    if device == "gpu":
        return (lambda: (a @ b, paddle.device.synchronize())), f"paddle {paddle.__version__} (cuBLAS) on {paddle.device.cuda.get_device_name(0)}"
    return (lambda: a @ b), f"paddle {paddle.__version__}"


def inference_fn(variant: str, device: str = "cpu"):
    """(images float32 (N, C, H, W) -> logits as NumPy) for a freshly built model in eval mode."""
    on(device)
    model = build(variant)
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    return run


def tutorial_step(images: np.ndarray, labels: np.ndarray, batch_size: int = 16, device: str = "cpu"):
    """The loop the tutorials write, in pieces: a Dataset converting one uint8 image at a time,
    a shuffling DataLoader, lenet5, Adam.

    Returns:
        (the loader, step(x, y): one training step on a batch of it).
    """
    on(device)

    class Images(paddle.io.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return (images[i].astype("float32") / 255)[None], np.int64(labels[i])

    model = build("lenet5")
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    loader = paddle.io.DataLoader(Images(), batch_size=batch_size, shuffle=True)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.clear_grad()
        loss.backward()
        opt.step()

    return loader, step


def native_batchnorm(model: LeNet) -> LeNet:
    """`model` with each of the project's BatchNorm layers replaced by paddle's own
    (nn.BatchNorm2D/1D at its default conventions) and the layer's activation: what a plain port
    writes, the peer of the layers that keep the spec's conventions (benchmarks' BatchNorm
    rows). The weights are not carried over."""
    shapes = dict(model.variant.shapes())

    def spatial(layer) -> bool:
        return len(shapes[layer.spec.name]) == 3  # (C, H, W): over channels

    class Native(nn.Layer):
        def __init__(self, layer):
            super().__init__()
            self.activation = layer.spec.activation
            self.bn = (nn.BatchNorm2D if spatial(layer) else nn.BatchNorm1D)(layer.spec.features, epsilon=layer.spec.eps, momentum=1 - layer.spec.momentum)

        def forward(self, x):
            return activate(self.bn(x), self.activation)

    for name, layer in list(model.named_children()):
        if isinstance(layer, BatchNorm):
            setattr(model, name, Native(layer))
    return model


def plain_step(variant: str, images: np.ndarray, labels: np.ndarray, own_batchnorm: bool = False, device: str = "cpu"):
    """The step of the shortest loop a paddle user writes for the trainer's work: the whole
    training set as one float tensor, a batch of indices, forward, the mean cross-entropy,
    backward, Adam's step. With `own_batchnorm`, paddle's BatchNorm layers (native_batchnorm).

    Returns:
        (step(index) -> the loss, sync(loss): waits until that step has finished).
    """
    on(device)
    x_all = paddle.to_tensor(images).astype("float32") / 255
    x_all = x_all.unsqueeze(1) if x_all.ndim == 3 else x_all
    y_all = paddle.to_tensor(labels)
    model = build(variant)
    model = native_batchnorm(model) if own_batchnorm else model
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())

    def step(index):
        idx = paddle.to_tensor(index)
        loss = F.cross_entropy(model(paddle.index_select(x_all, idx)), paddle.index_select(y_all, idx))
        opt.clear_grad()
        loss.backward()
        opt.step()
        return loss

    def sync(loss) -> float:
        return float(loss)  # reading the loss back waits for the step

    return step, sync


def launch_command(processes: int, args: list[str], out: Path) -> list[str]:
    """The command line of a training job of `processes` processes on this machine
    (paddle.distributed.launch, its logs beside `out`), writing its run to `out`."""
    return [
        sys.executable,
        "-m",
        "paddle.distributed.launch",
        "--nproc_per_node",
        str(processes),
        "--log_dir",
        str(out.parent / f"{out.name}-logs"),
        "lenet_paddle/train.py",
        *args,
        "--out",
        str(out),
    ]


def plain_onnx_export(variant: str, path: str) -> None:
    """Not written for paddle: benchmarks' plain onnxruntime session is one peer, the file of a
    plain `torch.onnx.export` (paddle's exporter, paddle2onnx, takes a static program first: no
    one-call plain export to compare with).

    Raises:
        NotImplementedError: always; benchmarks takes the next framework's.
    """
    raise NotImplementedError("paddle has no one-call plain ONNX export; the plain session's file is torch's")
