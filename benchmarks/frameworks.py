"""The framework-specific pieces the benchmarks time: inference calls and the tutorial-style
baseline loop (DataLoader over per-sample tensors, batch 16), each importing its framework
where it is needed, each on the CPU or the GPU (`device`: 'cpu' or 'gpu')."""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings

import numpy as np


def synchronize(framework: str) -> None:
    """Wait for the GPU's queued work (no-op on the CPU): a clock read before it measures the queueing only."""
    if framework == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
    else:
        import paddle

        if paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count():
            paddle.device.synchronize()


def on(framework: str, device: str):
    """torch's device for 'cpu'/'gpu'; for paddle, which places new tensors on its current
    device, that device made current."""
    if framework == "torch":
        import torch

        return torch.device("cuda" if device == "gpu" else "cpu")
    import paddle

    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    return paddle.device.get_device()


def inference_fn(framework: str, variant: str, device: str = "cpu"):
    """(images float32 (N, C, H, W) -> logits as NumPy) for a freshly built model in eval mode."""
    where = on(framework, device)
    if framework == "torch":
        import torch

        import lenet_torch

        model = lenet_torch.build(variant).eval().to(where)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(x).to(where)).cpu().numpy()

        return run
    import paddle

    import lenet_paddle

    model = lenet_paddle.build(variant)
    model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

    return run


def tutorial_loop(framework: str, images: np.ndarray, labels: np.ndarray, steps: int, warmup: int, batch_size: int = 16, device: str = "cpu") -> float:
    """Images/s of the loop the tutorials write: a Dataset converting one uint8 image at a time,
    a shuffling DataLoader at batch 16, lenet5, Adam. Steps after `warmup` are timed."""
    where = on(framework, device)
    if framework == "torch":
        import torch
        import torch.nn.functional as F

        import lenet_torch

        class Images(torch.utils.data.Dataset):
            def __len__(self):
                return len(labels)

            def __getitem__(self, i):
                return torch.tensor(images[i], dtype=torch.float32).div(255).unsqueeze(0), int(labels[i])

        model = lenet_torch.build("lenet5").to(where)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loader = torch.utils.data.DataLoader(Images(), batch_size=batch_size, shuffle=True)

        def step(x, y):
            loss = F.cross_entropy(model(x.to(where)), y.to(where))
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        import paddle
        import paddle.nn.functional as F

        import lenet_paddle

        class Images(paddle.io.Dataset):
            def __len__(self):
                return len(labels)

            def __getitem__(self, i):
                return (images[i].astype("float32") / 255)[None], np.int64(labels[i])

        model = lenet_paddle.build("lenet5")
        opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
        loader = paddle.io.DataLoader(Images(), batch_size=batch_size, shuffle=True)

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            opt.clear_grad()
            loss.backward()
            opt.step()

    done, start = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                start = time.perf_counter()
            step(x, y)
            done += 1
            if done == warmup + steps:
                break
    synchronize(framework)
    return steps * batch_size / (time.perf_counter() - start)


def native_batchnorm(framework: str, model):
    """`model` with each of the project's BatchNorm layers replaced by the framework's own
    (nn.BatchNorm2d/1d, nn.BatchNorm2D/1D at their default conventions) and the layer's
    activation: what a plain port writes, the peer of the layers that keep the spec's
    conventions (benchmarks' BatchNorm rows). The weights are not carried over."""
    shapes = dict(model.variant.shapes())
    spatial = lambda layer: len(shapes[layer.spec.name]) == 3  # noqa: E731 (C, H, W): over channels
    if framework == "torch":
        import torch.nn as nn

        from lenet_torch.model import BatchNorm, activate

        class Native(nn.Module):
            def __init__(self, layer):
                super().__init__()
                self.activation = layer.spec.activation
                self.bn = (nn.BatchNorm2d if spatial(layer) else nn.BatchNorm1d)(layer.spec.features, eps=layer.spec.eps, momentum=layer.spec.momentum)

            def forward(self, x):
                return activate(self.bn(x), self.activation)

    else:
        import paddle.nn as nn

        from lenet_paddle.model import BatchNorm, activate

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


def plain_loop(framework: str, variant: str, images: np.ndarray, labels: np.ndarray, batch_size: int, own_batchnorm: bool = False, device: str = "cpu"):
    """The shortest loop a framework's user writes for the same work as the trainer: the whole
    training set as one float tensor, a random batch of indices, forward, the mean
    cross-entropy, backward, Adam's step. The peer the trainer's own bookkeeping (schedule,
    running loss and accuracy, the recipe's loss and optimizer) is measured against.
    With `own_batchnorm`, the model's BatchNorm layers are the framework's own (native_batchnorm).

    Returns:
        run(steps) -> images/s over that many steps (synchronised before and after).
    """
    rng = np.random.default_rng(0)
    where = on(framework, device)
    if framework == "torch":
        import torch
        import torch.nn.functional as F

        import lenet_torch

        x_all = torch.from_numpy(images).to(where).float().div_(255)
        x_all = x_all.unsqueeze(1) if x_all.ndim == 3 else x_all
        y_all = torch.from_numpy(labels).to(where)
        model = lenet_torch.build(variant)
        model = (native_batchnorm(framework, model) if own_batchnorm else model).to(where)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(index):
            idx = torch.from_numpy(index).to(where)
            loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        sync = (lambda loss: float(loss)) if device == "gpu" else (lambda loss: None)  # noqa: E731 (CPU: the step has finished when it returns)
    else:
        import paddle
        import paddle.nn.functional as F

        import lenet_paddle

        x_all = paddle.to_tensor(images).astype("float32") / 255
        x_all = x_all.unsqueeze(1) if x_all.ndim == 3 else x_all
        y_all = paddle.to_tensor(labels)
        model = lenet_paddle.build(variant)
        model = native_batchnorm(framework, model) if own_batchnorm else model
        opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())

        def step(index):
            idx = paddle.to_tensor(index)
            loss = F.cross_entropy(model(paddle.index_select(x_all, idx)), paddle.index_select(y_all, idx))
            opt.clear_grad()
            loss.backward()
            opt.step()
            return loss

        sync = lambda loss: float(loss)  # noqa: E731

    def run(steps: int) -> float:
        batches = [rng.integers(0, len(labels), batch_size) for _ in range(steps)]
        start, loss = time.perf_counter(), None
        for index in batches:
            loss = step(index)
        sync(loss)
        return steps * batch_size / (time.perf_counter() - start)

    return run


def plain_onnx_session(variant: str, path: str, device: str = "cpu"):
    """An onnxruntime session, every option at its default but the providers, on what a plain
    `torch.onnx.export(model, x, path)` writes for the variant (no clean-up of ours): the peer of
    the project's exported file and its tuned session."""
    import onnxruntime as ort
    import torch

    import lenet_torch
    from export.runtime import preload_cuda_libraries, providers

    model = lenet_torch.build(variant).eval()
    example = torch.rand(2, *model.variant.input.shape)
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the exporter logs every pass
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), path, input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    finally:
        logging.disable(previous)
    if device == "gpu":
        preload_cuda_libraries(ort)
    sess = ort.InferenceSession(path, providers=providers(device))
    return lambda x: sess.run(None, {"image": x})[0]
