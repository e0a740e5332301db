"""A right port (torch half): a small ReLU net for 1x28x28 with two 6->6 3x3 convolutions of the same shape,
defined in __init__ as conv_a then conv_b but called in forward as conv_b then conv_a; then 2x2 max pool
and a 6*14*14-84-10 classifier.
"""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 5, padding=2)
        self.conv_a = nn.Conv2d(6, 6, 3, padding=1)
        self.conv_b = nn.Conv2d(6, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(6 * 14 * 14, 84)
        self.fc2 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.relu(self.stem(x))
        x = self.relu(self.conv_b(x))
        x = self.relu(self.conv_a(x))
        x = self.pool(x)
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)
