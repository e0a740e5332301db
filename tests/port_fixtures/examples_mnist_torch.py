"""The architecture of pytorch/examples' MNIST `Net` (mnist/main.py), written for this project from its
description, not copied: the environment this project is built in forbids committing code taken from a
public repository, so the published text is not here. Checked by reading the stored copy of
pytorch/examples mnist/main.py (commit 09654b86fcd7b489840546d9ad0cf9b629dc50d0, a copy whose
comments were translated into Chinese; its Net class is the upstream one as widely published): the same layers, attribute names, order and
functional calls, so a checkpoint saved by the published script (mnist_cnn.pt) loads into this class.

conv1 1->32 3x3 stride 1, F.relu, conv2 32->64 3x3 stride 1, F.relu, F.max_pool2d 2, dropout1 p=0.25,
flatten from dim 1 (64*12*12 = 9216), fc1 9216->128, F.relu, dropout2 p=0.5, fc2 128->10, and
F.log_softmax(dim=1): the output is log-probabilities (the published script trains it with F.nll_loss).
1,199,882 parameters.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels=1, out_channels=32, kernel_size=3, stride=1)
        self.conv2 = nn.Conv2d(in_channels=32, out_channels=64, kernel_size=3, stride=1)
        self.dropout1 = nn.Dropout(p=0.25)
        self.dropout2 = nn.Dropout(p=0.5)
        self.fc1 = nn.Linear(in_features=9216, out_features=128)
        self.fc2 = nn.Linear(in_features=128, out_features=10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)
