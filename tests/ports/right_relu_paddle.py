"""A right port (paddle half): the modern LeNet-5 for 1x28x28 MNIST, layer for layer as in torch: conv
6@5x5 (padding 2), ReLU, 2x2 max pool, conv 16@5x5, ReLU, 2x2 max pool, flatten, and the 400-120-84-10
classifier.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(1, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2D(2, 2),
            nn.Conv2D(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2D(2, 2),
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.flatten(x)
        return self.classifier(x)
