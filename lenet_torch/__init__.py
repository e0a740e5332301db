"""lenet_torch: the lenet_spec variants as torch.nn.Modules."""

import lenet_spec  # noqa: F401  (first: a Ctrl-C while torch or paddle is imported ends in one line)

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lenet_torch needs PyTorch: pip install torch (see README.md for the CPU build)") from e

from .checkpoint import load, load_model, save, save_state
from .model import LeNet, build

__all__ = ["LeNet", "build", "load", "load_model", "save", "save_state"]
