"""A right port (torch half): the BatchNorm LeNet for 1x28x28 (conv, BatchNorm2d, ReLU, 2x2 max pool,
twice; then 256-120-10) with torch's BatchNorm2d defaults: momentum 0.1, eps 1e-5, and the unbiased batch
variance (divided by n-1) folded into the running variance.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.BatchNorm2d(16),
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
