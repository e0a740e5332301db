"""A wrong port (torch half): the BatchNorm LeNet for 1x28x28 (conv, BatchNorm2d, ReLU, 2x2 max pool,
twice; then 256-120-10), BatchNorm2d with torch's default eps=1e-5.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.BatchNorm2d(6, eps=1e-5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.BatchNorm2d(16, eps=1e-5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120),
            nn.ReLU(),
            nn.Linear(120, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
