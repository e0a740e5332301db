"""What benchmarks times in PyTorch: a GEMM, inference calls, the tutorial-style loop's pieces,
the plain loop's step, the framework's own BatchNorm and a plain ONNX export. Each on the CPU or
the GPU (`device`: 'cpu' or 'gpu'); the clocks and the loops around them are benchmarks'.

Mirrors lenet_paddle/bench.py: same functions, framework words only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import BatchNorm, LeNet, activate, build


def synchronize() -> None:
    """Wait for the GPU's queued work (no-op on the CPU): a clock read before it measures the queueing only."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def on(device: str):
    """The torch.device for 'cpu' or 'gpu'."""
    return torch.device("cuda" if device == "gpu" else "cpu")


def matmul(n: int, device: str = "cpu"):
    """(a call multiplying two n x n float32 matrices and waiting for it, the library in words)."""
    if device == "gpu":
        a, b = torch.rand(n, n, device="cuda"), torch.rand(n, n, device="cuda")
        return (lambda: (a @ b, torch.cuda.synchronize())), f"torch {torch.__version__} (cuBLAS) on {torch.cuda.get_device_name(0)}"
    a, b = torch.rand(n, n), torch.rand(n, n)
    return (lambda: a @ b), f"torch {torch.__version__} (MKL), {torch.get_num_threads()} threads"


def inference_fn(variant: str, device: str = "cpu"):
    """(images float32 (N, C, H, W) -> logits as NumPy) for a freshly built model in eval mode."""
    where = on(device)
    model = build(variant).eval().to(where)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x).to(where)).cpu().numpy()

    return run


def tutorial_step(images: np.ndarray, labels: np.ndarray, batch_size: int = 16, device: str = "cpu"):
    """The loop the tutorials write, in pieces: a Dataset converting one uint8 image at a time,
    a shuffling DataLoader, lenet5, Adam.

    Returns:
        (the loader, step(x, y): one training step on a batch of it).
    """
    where = on(device)

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(labels)

        def __getitem__(self, i):
            return torch.tensor(images[i], dtype=torch.float32).div(255).unsqueeze(0), int(labels[i])

    model = build("lenet5").to(where)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(Images(), batch_size=batch_size, shuffle=True)

    def step(x, y):
        loss = F.cross_entropy(model(x.to(where)), y.to(where))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return loader, step


def native_batchnorm(model: LeNet) -> LeNet:
    """`model` with each of the project's BatchNorm layers replaced by torch's own
    (nn.BatchNorm2d/1d at its default conventions) and the layer's activation: what a plain port
    writes, the peer of the layers that keep the spec's conventions (benchmarks' BatchNorm
    rows). The weights are not carried over."""
    shapes = dict(model.variant.shapes())

    def spatial(layer) -> bool:
        return len(shapes[layer.spec.name]) == 3  # (C, H, W): over channels

    class Native(nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.activation = layer.spec.activation
            self.bn = (nn.BatchNorm2d if spatial(layer) else nn.BatchNorm1d)(layer.spec.features, eps=layer.spec.eps, momentum=layer.spec.momentum)

        def forward(self, x):
            return activate(self.bn(x), self.activation)

    for name, layer in list(model.named_children()):
        if isinstance(layer, BatchNorm):
            setattr(model, name, Native(layer))
    return model


def plain_step(variant: str, images: np.ndarray, labels: np.ndarray, own_batchnorm: bool = False, device: str = "cpu"):
    """The step of the shortest loop a torch user writes for the trainer's work: the whole
    training set as one float tensor, a batch of indices, forward, the mean cross-entropy,
    backward, Adam's step. With `own_batchnorm`, torch's BatchNorm layers (native_batchnorm).

    Returns:
        (step(index) -> the loss, sync(loss): waits until that step has finished).
    """
    where = on(device)
    x_all = torch.from_numpy(images).to(where).float().div_(255)
    x_all = x_all.unsqueeze(1) if x_all.ndim == 3 else x_all
    y_all = torch.from_numpy(labels).to(where)
    model = build(variant)
    model = (native_batchnorm(model) if own_batchnorm else model).to(where)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(index):
        idx = torch.from_numpy(index).to(where)
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    sync = (lambda loss: float(loss)) if device == "gpu" else (lambda loss: None)  # CPU: the step has finished when it returns
    return step, sync


def launch_command(processes: int, args: list[str], out: Path) -> list[str]:
    """The command line of a training job of `processes` processes on this machine (torchrun,
    standalone), writing its run to `out`."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "lenet_torch.train",
        *args,
        "--out",
        str(out),
    ]


def plain_onnx_export(variant: str, path: str) -> None:
    """Write what a plain `torch.onnx.export(model, x, path)` writes for the variant (no clean-up
    of ours, a dynamic batch): the file of benchmarks' plain onnxruntime session."""
    model = build(variant).eval()
    example = torch.rand(2, *model.variant.input.shape)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the exporter logs every pass
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), path, input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    finally:
        logging.disable(previous)
