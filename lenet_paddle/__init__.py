"""lenet_paddle: the lenet_spec variants as paddle.nn.Layers."""

import lenet_spec  # noqa: F401  (first: a Ctrl-C while torch or paddle is imported ends in one line)

import warnings

try:
    with warnings.catch_warnings():  # paddle warns on import when the C++ build cache ccache is absent
        warnings.filterwarnings("ignore", message="No ccache found")
        import paddle  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lenet_paddle needs PaddlePaddle: pip install paddlepaddle (or paddlepaddle-gpu)") from e

from .checkpoint import load, load_model, save, save_state
from .model import LeNet, build

__all__ = ["LeNet", "build", "load", "load_model", "save", "save_state"]
