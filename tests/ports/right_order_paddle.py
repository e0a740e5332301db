"""A right port (paddle half): the same net, the two same-shape 3x3 convolutions keeping their torch names
and their call order (conv_b, then conv_a) but defined in __init__ the other way round (conv_b first), so a
tool that pairs layers by definition order pairs conv_a with conv_b; pairing by call order is right.
"""

import paddle
from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2D(1, 6, 5, padding=2)
        self.conv_b = nn.Conv2D(6, 6, 3, padding=1)
        self.conv_a = nn.Conv2D(6, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2D(2)
        self.fc1 = nn.Linear(6 * 14 * 14, 84)
        self.fc2 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.relu(self.stem(x))
        x = self.relu(self.conv_b(x))
        x = self.relu(self.conv_a(x))
        x = self.pool(x)
        x = paddle.flatten(x, 1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)
