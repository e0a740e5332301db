"""A right port (paddle half) of the bigger conv-BatchNorm-ReLU-pool LeNet with dropout: BatchNorm2D and
BatchNorm1D with their defaults (momentum 0.9, which is torch's 0.1; epsilon 1e-5) and Dropout in its default
upscale_in_train mode. Equal in forward and backward; a training step would show paddle's biased running variance.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2D(3, 16, 3, padding=1), nn.BatchNorm2D(16), nn.ReLU(), nn.MaxPool2D(2))
        self.block2 = nn.Sequential(nn.Conv2D(16, 32, 3, padding=1), nn.BatchNorm2D(32), nn.ReLU(), nn.MaxPool2D(2))
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(0.5),
            nn.Linear(32 * 8 * 8, 256),
            nn.BatchNorm1D(256),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(256, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.head(self.block2(self.block1(x)))
