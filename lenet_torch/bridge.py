"""A torch LeNet seen through NumPy: state in and out, layer outputs, gradients, on the CPU or
the GPU the model is on.

Mirrors lenet_paddle/bridge.py; parity checks and converters use only these functions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lenet_spec.checkpoint import state_mismatch

from .model import LeNet


def dtype_of(model: LeNet) -> np.dtype:
    """The NumPy dtype of the model's parameters."""
    return np.dtype(str(next(model.parameters()).dtype).removeprefix("torch."))


def to_device(model: LeNet, device: str) -> LeNet:
    """`model` moved to 'cpu' or 'gpu' (the first CUDA device); the functions below run where it is."""
    return model.to("cuda" if device == "gpu" else "cpu")


def exact_gpu() -> str:
    """CUDA arithmetic made fit for comparison: float32 stays float32 (no TF32 in cuDNN's
    convolutions nor in cuBLAS's products) and cuDNN takes deterministic algorithms. Returns
    torch's build and the GPU, in words."""
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}) on {torch.cuda.get_device_name(0)}"


def _on(model: LeNet, array: np.ndarray) -> torch.Tensor:
    """`array` as a tensor on the model's device."""
    return torch.from_numpy(array).to(next(model.parameters()).device)


def state_numpy(model: LeNet) -> dict[str, np.ndarray]:
    """name -> copy of the parameter, in torch's layout."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def load_state_numpy(model: LeNet, state: dict[str, np.ndarray]) -> None:
    """Copy `state` (torch layout: parameters and buffers) into `model`, each cast to the dtype
    the model holds it in (float32/float64; int64 for counters).

    Raises:
        ValueError: listing missing, unexpected and mis-shaped keys.
    """
    own = model.state_dict()
    problem = state_mismatch({k: tuple(v.shape) for k, v in own.items()}, state)
    if problem:
        raise ValueError(f"{model.variant.name} (torch): {problem}")
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=str(own[k].dtype).removeprefix("torch."))) for k, v in state.items()})


def forward_numpy(model: LeNet, images: np.ndarray, train: bool = False, masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every layer's output for `images`, as arrays; in training mode (BatchNorm on the batch's
    statistics, moving its running ones; Dropout keeping `masks`' units) or evaluation mode."""
    model.train(train)
    model.set_dropout_masks(masks)
    with torch.no_grad():
        out = model.trace(_on(model, images))
    model.set_dropout_masks(None)
    return {k: v.cpu().numpy() for k, v in out.items()}


def grads_numpy(model: LeNet, images: np.ndarray, labels: np.ndarray, masks: dict[str, np.ndarray] | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """Mean cross-entropy of the logits (training mode, Dropout keeping `masks`' units) and its
    gradient for every parameter (torch layout)."""
    model.train()
    model.set_dropout_masks(masks)
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(_on(model, images)), _on(model, labels.astype(np.int64)))
    loss.backward()
    model.set_dropout_masks(None)
    return float(loss.detach()), {k: p.grad.cpu().numpy().copy() for k, p in model.named_parameters()}
