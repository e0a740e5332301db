"""Seed 002's Net (torch), verbatim from ../shared/seeds/002_90477e34fbb42180.txt, lines 26-46: the
article's whole code block (its two imports and the class). Added: this docstring only. It is the PyTorch
tutorial's CIFAR-10 CNN: 3 input channels, conv 6@5x5, F.relu, one MaxPool2d(2, 2) module called twice,
conv 16@5x5, x.view(-1, 16 * 5 * 5), 400-120-84-10 with F.relu.
"""

import torch.nn as nn
import torch.nn.functional as F

class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 5 * 5)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        return x
