"""A right port (torch half): a bigger LeNet for 3x32x32 (CIFAR-sized) images: twice conv 3x3 (padding 1),
BatchNorm2d, ReLU and 2x2 max pool (3->16->32 channels), then flatten, Dropout(0.5), Linear 2048->256,
BatchNorm1d, ReLU, Dropout(0.25), Linear 256->64, ReLU, Linear 64->10.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.block2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(32 * 8 * 8, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(256, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.head(self.block2(self.block1(x)))
