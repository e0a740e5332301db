"""parity: weight transfer between the torch and paddle LeNets, and the checks that prove them equal.

Importing this package imports no framework; `parity.check` and `parity.convert` import
the ones they need.
"""

from lenet_spec.mapping import MappingError, convert, paddle_to_torch, table, torch_to_paddle

__all__ = ["MappingError", "convert", "paddle_to_torch", "table", "torch_to_paddle"]
