"""The corpus of hand ports that parity.diff is proven on (tests/test_diff.py) and that PaDiff is
measured against (benchmarks/padiff_side.py): each case a torch file and a paddle file in this
folder, and what a right tool must say about the pair.

`expect` None: the port is right (equal in every phase). Otherwise the first difference, as
parity.diff's JSON names it: phase ("forward" | "backward" | "train"), mode ("eval" | "train"),
the torch and paddle layers (dotted names in their models), the cause ("layer" | "between" |
"state" | "parameter" | "raised" | "structure") and the known convention, if any
("batchnorm_momentum", "batchnorm_biased_variance", "batchnorm_epsilon", "dropout_mode",
"avgpool_padding", "gelu_approximate", "linear_not_transposed").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Expect:
    phase: str
    mode: str
    torch: str | None
    paddle: str | None
    cause: str
    convention: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    torch: str  # FILE.py:NAME in this folder
    paddle: str
    input: tuple[int, ...]  # C,H,W (or features,) of one example
    expect: Expect | None  # None: a right port
    train: int = 0  # optimizer steps to compare (--train)
    optimizer: str = "sgd"
    why: str = ""  # what the port does, in words
    options: dict = field(default_factory=dict)  # further parity.diff options

    def spec(self, side: str) -> str:
        """The side's FILE.py:NAME with the file's absolute path."""
        file, name = getattr(self, side).split(":")
        return f"{HERE / file}:{name}"


CASES: list[Case] = [
    Case(
        "seed004",
        "seed004_torch.py:LeNet",
        "seed004_paddle.py:LeNet",
        (1, 32, 32),
        None,
        train=3,
        optimizer="adam",
        why="seed 004 as published: LeNet-5 with the paper's trainable subsampling, in torch and by hand in paddle",
    ),
    Case(
        "right_relu",
        "right_relu_torch.py:Net",
        "right_relu_paddle.py:Net",
        (1, 28, 28),
        None,
        train=2,
        why="the modern ReLU LeNet-5 (conv 6@5x5 padding 2, max pools, 400-120-84-10) in nn.Sequential, layer for layer",
    ),
    Case(
        "right_dropout",
        "right_dropout_torch.py:Net",
        "right_dropout_paddle.py:Net",
        (1, 28, 28),
        None,
        train=2,
        why="Dropout(0.5) after both hidden Linears; paddle's default mode upscale_in_train is torch's dropout",
    ),
    Case(
        "right_order",
        "right_order_torch.py:Net",
        "right_order_paddle.py:Net",
        (1, 28, 28),
        None,
        train=2,
        why="two same-shape 6->6 3x3 convs called conv_b then conv_a; torch defines conv_a first, paddle conv_b first: "
        "pairing by definition order is wrong (output 0.56 relative off), by call order right; one ReLU module called four times",
    ),
    Case(
        "right_functional",
        "right_functional_torch.py:Net",
        "right_functional_paddle.py:Net",
        (1, 28, 28),
        None,
        train=2,
        why="ReLU LeNet-5 with F.relu, F.max_pool2d and flatten(x, 1) in forward: only convs and Linears are layers",
    ),
    Case(
        "right_gelu_ln",
        "right_gelu_ln_torch.py:Net",
        "right_gelu_ln_paddle.py:Net",
        (3, 16, 16),
        None,
        train=2,
        why="conv, ReLU, max pool, then Linear-LayerNorm-GELU-Linear with both defaults (epsilon 1e-5, exact GELU); "
        "paddle keeps LayerNorm's epsilon in float32, about 1e-12 relative in float64",
    ),
    Case(
        "right_bn_dropout",
        "right_bn_dropout_torch.py:Net",
        "right_bn_dropout_paddle.py:Net",
        (3, 32, 32),
        None,
        why="conv-BatchNorm-ReLU-pool twice, Dropout, Linear-BatchNorm1d-ReLU-Dropout, Linears, all defaults; "
        "forward and backward only, since a training step shows paddle's biased running variance",
    ),
    Case(
        "right_adaptive_pool",
        "right_adaptive_pool_torch.py:Net",
        "right_adaptive_pool_paddle.py:Net",
        (3, 28, 28),
        None,
        train=1,
        why="a ResNet-style head: convs to 7x7, AdaptiveAvgPool2d(1), Linear; paddle's pool scales its gradient by float32(1/49) in float64 "
        "too (2e-8 off): a framework rounding, recognised and accepted, not a difference of the port",
    ),
    Case(
        "bn_momentum",
        "bn_momentum_torch.py:Net",
        "bn_momentum_paddle.py:Net",
        (1, 28, 28),
        Expect("train", "train", "features.1", "features.1", "state", "batchnorm_momentum"),
        train=1,
        why="BatchNorm2D(momentum=0.1) copied from torch; paddle's momentum weighs the old average, so 0.9 is right: "
        "after one step _mean is 8x torch's running_mean (0.9 / 0.1)",
    ),
    Case(
        "bn_variance",
        "bn_variance_torch.py:Net",
        "bn_variance_paddle.py:Net",
        (1, 28, 28),
        Expect("train", "train", "features.1", "features.1", "state", "batchnorm_biased_variance"),
        train=1,
        why="a right BatchNorm port by its defaults, yet paddle folds the biased batch variance into _variance: "
        "after one step about 1e-5 relative off (batch 8, n = 8*24*24)",
    ),
    Case(
        "bn_epsilon",
        "bn_epsilon_torch.py:Net",
        "bn_epsilon_paddle.py:Net",
        (1, 28, 28),
        Expect("forward", "eval", "features.1", "features.1", "layer", "batchnorm_epsilon"),
        why="BatchNorm2D(epsilon=1e-3) where torch has eps=1e-5: in eval at the initial running stats, sqrt(1+1e-5)/sqrt(1+1e-3) = 4.9e-4 off",
    ),
    Case(
        "dropout_mode",
        "dropout_mode_torch.py:Net",
        "dropout_mode_paddle.py:Net",
        (1, 28, 28),
        Expect("forward", "eval", "classifier.2", "classifier.2", "layer", "dropout_mode"),
        why='Dropout(0.5, mode="downscale_in_infer"): in eval paddle multiplies by 0.5 where torch is the identity',
    ),
    Case(
        "avgpool_padding",
        "avgpool_padding_torch.py:Net",
        "avgpool_padding_paddle.py:Net",
        (3, 16, 16),
        Expect("forward", "eval", "features.2", "features.2", "layer", "avgpool_padding"),
        why="AvgPool2D(3, stride=2, padding=1) with paddle's default exclusive=True, where torch counts the padding (count_include_pad=True)",
    ),
    Case(
        "gelu_approximate",
        "gelu_approximate_torch.py:Net",
        "gelu_approximate_paddle.py:Net",
        (3, 16, 16),
        Expect("forward", "eval", "act1", "act1", "layer", "gelu_approximate"),
        why="nn.GELU(approximate=True), the tanh GELU, where torch's nn.GELU() is the exact one (up to 4.7e-4 apart)",
    ),
    Case(
        "wrong_pool",
        "wrong_pool_torch.py:Net",
        "wrong_pool_paddle.py:Net",
        (1, 28, 28),
        Expect("forward", "eval", "features.5", "features.5", "layer"),
        why="the second pool is AvgPool2D(2) where torch has MaxPool2d(2); the first pool agrees",
    ),
    Case(
        "flatten_order",
        "flatten_order_torch.py:Net",
        "flatten_order_paddle.py:Net",
        (1, 28, 28),
        Expect("forward", "eval", "fc1", "fc1", "between"),
        why="paddle flattens channels last (transpose([0, 2, 3, 1]).flatten(1)) in forward, torch NCHW: fc1 gets its inputs permuted",
    ),
    Case(
        "missing_layer",
        "missing_layer_torch.py:Net",
        "missing_layer_paddle.py:Net",
        (1, 28, 28),
        Expect("forward", "eval", "classifier.1", None, "structure"),
        why="the paddle classifier forgets the ReLU after its first Linear (torch classifier.1); the later layers sit one index lower",
    ),
    Case(
        "shape_raises",
        "shape_raises_torch.py:Net",
        "shape_raises_paddle.py:Net",
        (1, 28, 28),
        Expect("forward", "eval", "fc1", "fc1", "raised"),
        why="paddle's fc1 is Linear(16*4*4, 120) where 400 features arrive: its matmul raises (and torch's fc1 weight cannot be copied)",
    ),
]
