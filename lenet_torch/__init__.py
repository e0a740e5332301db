"""lenet_torch: the lenet_spec variants as torch.nn.Modules.

Importing the package imports nothing heavy: torch is imported by the first name used from it
(`lenet_torch.build`, or a module such as `lenet_torch.train`), so a command's own first line can
make a Ctrl-C during that import end in one line (lenet_spec.cli.interrupts_quietly)."""

from __future__ import annotations

import importlib

_NAMES = {"LeNet": "model", "build": "model", "load": "checkpoint", "load_model": "checkpoint", "save": "checkpoint", "save_state": "checkpoint"}
__all__ = list(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
