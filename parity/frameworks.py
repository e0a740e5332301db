"""Framework packages by name, imported on first use with a clear message if missing."""

from __future__ import annotations

import importlib
from types import ModuleType

FRAMEWORKS = ("torch", "paddle")
_INSTALL = {"torch": "pip install torch", "paddle": "pip install paddlepaddle"}


class FrameworkMissing(RuntimeError):
    pass


def package(framework: str) -> ModuleType:
    """lenet_torch or lenet_paddle."""
    try:
        return importlib.import_module(f"lenet_{framework}")
    except ImportError as e:
        raise FrameworkMissing(f"{framework} is not importable ({e}); install it: {_INSTALL[framework]}") from None


def bridge(framework: str) -> ModuleType:
    """lenet_torch.bridge or lenet_paddle.bridge."""
    package(framework)
    return importlib.import_module(f"lenet_{framework}.bridge")
