"""A right port (paddle half): the conv, ReLU, max pool and the Linear-LayerNorm-GELU-Linear head, with both
frameworks' defaults, which agree: LayerNorm's epsilon 1e-5 and the exact (erf) GELU.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2D(2)
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
