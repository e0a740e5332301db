"""Trains lenet5-bn in torch with its BatchNorm layers' momentum (the batch's weight) at 0.9:
what d2l's Paddle version gets from `nn.BatchNorm2D(C, momentum=0.1)`, since paddle's momentum
weighs the running average. Everything else is lenet5-bn's recipe. docs/RESULTS.md, "Stateful
layers", has the run; the trainer's flags pass through (--out, --no-progress, ...).

    LENET_DATA=/usr/share/datasets python docs/experiments/batchnorm_momentum.py --out runs/bn-m09-torch --no-progress
"""

import dataclasses
import sys

from lenet_spec import recipe, variants
from lenet_spec.layers import BatchNorm

BASE = variants.VARIANTS["lenet5-bn"]
VARIANT = dataclasses.replace(
    BASE,
    name="lenet5-bn-batch-weight-0.9",
    layers=tuple(dataclasses.replace(layer, momentum=0.9) if isinstance(layer, BatchNorm) else layer for layer in BASE.layers),
)

if __name__ == "__main__":
    variants.VARIANTS[VARIANT.name] = VARIANT  # for this process only
    recipe.RECIPES[VARIANT.name] = recipe.RECIPES[BASE.name]
    from lenet_torch.train import main

    sys.exit(main(["--variant", VARIANT.name, *sys.argv[1:]]))
