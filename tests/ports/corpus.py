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
]
