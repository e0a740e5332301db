"""A paddle LeNet seen through NumPy: state in and out, layer outputs, gradients, on the CPU or
the GPU the model is on.

Mirrors lenet_torch/bridge.py; parity checks and converters use only these functions.
"""

from __future__ import annotations

import contextlib

import numpy as np
import paddle
import paddle.nn.functional as F

from lenet_spec.checkpoint import state_mismatch

from .model import LeNet


def dtype_of(model: LeNet) -> np.dtype:
    """The NumPy dtype of the model's parameters."""
    return np.dtype(str(model.parameters()[0].dtype).removeprefix("paddle."))


def to_device(model: LeNet, device: str) -> LeNet:
    """`model` moved to 'cpu' or 'gpu' (the first CUDA device); the functions below run where it is."""
    model.to(device="gpu:0" if device == "gpu" else "cpu")
    return model


def exact_gpu() -> str:
    """CUDA arithmetic made fit for comparison: float32 stays float32 (no TF32 in cuDNN's
    convolutions; cuBLAS's products follow NVIDIA_TF32_OVERRIDE, which parity.gpu sets) and
    cuDNN takes deterministic algorithms. Returns paddle's build and the GPU, in words."""
    missing = []
    for flag, value in (("FLAGS_cudnn_allow_tf32", False), ("FLAGS_cudnn_deterministic", True)):  # flags of paddle's CUDA builds
        try:
            paddle.set_flags({flag: value})
        except ValueError:
            missing.append(flag)
    unset = f" ({', '.join(missing)}: not in this build)" if missing else ""
    return f"paddle {paddle.__version__} (CUDA {paddle.version.cuda()}, cuDNN {paddle.version.cudnn()}) on {paddle.device.cuda.get_device_name(0)}{unset}"


@contextlib.contextmanager
def _on(model: LeNet):
    """Paddle puts new tensors (the input, dropout masks, scratch) on the current device: make
    it the model's for the call, then restore it."""
    previous, place = paddle.device.get_device(), model.parameters()[0].place
    paddle.set_device(f"gpu:{place.gpu_device_id()}" if place.is_gpu_place() else "cpu")
    try:
        yield
    finally:
        paddle.set_device(previous)


def state_numpy(model: LeNet) -> dict[str, np.ndarray]:
    """name -> copy of the parameter, in paddle's layout."""
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def load_state_numpy(model: LeNet, state: dict[str, np.ndarray]) -> None:
    """Copy `state` (paddle layout: parameters and buffers) into `model`, each cast to the dtype
    the model holds it in (float32/float64; int64 for counters).

    Raises:
        ValueError: listing missing, unexpected and mis-shaped keys.
    """
    own = model.state_dict()
    problem = state_mismatch({k: tuple(v.shape) for k, v in own.items()}, state)
    if problem:
        raise ValueError(f"{model.variant.name} (paddle): {problem}")
    model.set_state_dict({k: np.asarray(v, dtype=str(own[k].dtype).removeprefix("paddle.")) for k, v in state.items()})


def forward_numpy(model: LeNet, images: np.ndarray, train: bool = False, masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every layer's output for `images`, as arrays; in training mode (BatchNorm on the batch's
    statistics, moving its running ones; Dropout keeping `masks`' units) or evaluation mode."""
    model.train() if train else model.eval()
    model.set_dropout_masks(masks)
    with paddle.no_grad(), _on(model):
        out = model.trace(paddle.to_tensor(images))
    model.set_dropout_masks(None)
    return {k: v.numpy() for k, v in out.items()}


def grads_numpy(model: LeNet, images: np.ndarray, labels: np.ndarray, masks: dict[str, np.ndarray] | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy of the logits (training mode, Dropout keeping `masks`' units) and its
    gradient for every parameter (paddle layout)."""
    model.train()
    model.set_dropout_masks(masks)
    model.clear_gradients()
    with _on(model):
        loss = F.cross_entropy(model(paddle.to_tensor(images)), paddle.to_tensor(labels.astype(np.int64)))
        loss.backward()
    model.set_dropout_masks(None)
    return float(loss.detach()), {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
