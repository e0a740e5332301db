"""lenet_paddle: the lenet_spec variants as paddle.nn.Layers.

Importing the package imports nothing heavy: paddle is imported by the first name used from it
(`lenet_paddle.build`, or a module such as `lenet_paddle.train`), so a command's own first line can
make a Ctrl-C during that import end in one line (lenet_spec.cli.interrupts_quietly)."""

from __future__ import annotations

import importlib
import importlib.util
import warnings

# paddle warns on import when the C++ build cache ccache is absent, which no command here uses
warnings.filterwarnings("ignore", message="No ccache found", module="paddle.utils.cpp_extension")

_NAMES = {"LeNet": "model", "build": "model", "load": "checkpoint", "load_model": "checkpoint", "save": "checkpoint", "save_state": "checkpoint"}
__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a module of the package, as `lenet_paddle.model`
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
