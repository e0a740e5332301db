"""A wrong port (paddle half): the padded average pooling written AvgPool2D(3, stride=2, padding=1) as in torch,
but paddle's default is exclusive=True: the padding is left out of the count, so a border window divides by
the 4 or 6 pixels it covers instead of 9 (the right port says exclusive=False).
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2D(3, stride=2, padding=1),
            nn.Conv2D(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2D(3, stride=2, padding=1),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
