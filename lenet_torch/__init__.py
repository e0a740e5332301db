"""lenet_torch: the lenet_spec variants as torch.nn.Modules.

Importing the package imports nothing heavy: torch is imported by the first name used from it
(`lenet_torch.build`, or a module such as `lenet_torch.train`), so a command's own first line can
make a Ctrl-C during that import end in one line (lenet_spec.cli.interrupts_quietly)."""

from __future__ import annotations

import importlib
import importlib.util

_NAMES = {"LeNet": "model", "build": "model", "load": "checkpoint", "load_model": "checkpoint", "save": "checkpoint", "save_state": "checkpoint"}
__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a module of the package, as `lenet_torch.model`
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
