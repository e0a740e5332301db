"""A wrong port (torch half): for 3x16x16 images, a 3->8 3x3 convolution (padding 1), GELU and 2x2 max pool,
then Linear 512->64, GELU, Linear 64->10; nn.GELU() is torch's exact GELU, x * Phi(x) with the erf.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act1 = nn.GELU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(8 * 8 * 8, 64)
        self.act2 = nn.GELU()
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(self.act1(self.conv(x)))
        x = x.flatten(1)
        return self.fc2(self.act2(self.fc1(x)))
