"""A wrong port (torch half): a LeNet for 1x28x28 with batch normalisation after each convolution
(conv, BatchNorm2d, ReLU, 2x2 max pool, twice; then 256-120-10), the BatchNorm2d layers written with torch's
default momentum=0.1 spelled out: each training step moves the running mean and variance 10% of the way
to the batch's statistics.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            nn.BatchNorm2d(6, momentum=0.1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.BatchNorm2d(16, momentum=0.1),
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
