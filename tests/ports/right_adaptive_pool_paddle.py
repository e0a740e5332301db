"""A right port: a ResNet-style head (two strided convs down to 7x7, ReLU, AdaptiveAvgPool2D(1),
flatten, Linear). Paddle half, written by hand from the torch half."""

import paddle
from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2D(8, 16, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu(self.conv2(self.relu(self.conv1(x))))  # (N, 16, 7, 7)
        return self.fc(paddle.flatten(self.pool(x), 1))
