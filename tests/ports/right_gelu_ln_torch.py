"""A right port (torch half): for 3x16x16 images, a 3->8 3x3 convolution (padding 1), ReLU and 2x2 max pool,
then a transformer-style head: Linear 512->64, LayerNorm(64), exact GELU, Linear 64->10.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.head = nn.Sequential(
            nn.Linear(8 * 8 * 8, 64),
            nn.LayerNorm(64),
            nn.GELU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        x = self.pool(self.act(self.conv(x)))
        return self.head(self.flatten(x))
