"""A wrong port (paddle half): the GELU net with nn.GELU(approximate=True), the tanh approximation (as in BERT's
or GPT-2's code) where torch's nn.GELU() is the exact erf GELU; the two differ by up to 4.7e-4 near x = -2.7,
from the first GELU on. (The right port is nn.GELU(), approximate=False.)
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.act1 = nn.GELU(approximate=True)
        self.pool = nn.MaxPool2D(2)
        self.fc1 = nn.Linear(8 * 8 * 8, 64)
        self.act2 = nn.GELU(approximate=True)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(self.act1(self.conv(x)))
        x = x.flatten(1)
        return self.fc2(self.act2(self.fc1(x)))
