"""The depth benchmark's pair (benchmarks/diff.py): Linear(256, 256) + Tanh repeated D times, then
Linear(256, 10). `mlp_paddle.py:depth32` is the network with D = 32: the factory parity.diff calls
is made for the name asked (PEP 562). Paddle half."""

import paddle  # noqa: F401  (the framework this half is written in)
from paddle import nn


class Net(nn.Layer):
    def __init__(self, depth: int):
        super().__init__()
        layers = []
        for _ in range(depth):
            layers += [nn.Linear(256, 256), nn.Tanh()]
        layers.append(nn.Linear(256, 10))
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


def __getattr__(name: str):
    if name.startswith("depth") and name[5:].isdigit():
        return lambda: Net(int(name[5:]))
    raise AttributeError(name)
