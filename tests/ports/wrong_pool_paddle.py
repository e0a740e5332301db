"""A wrong port (paddle half): the ReLU LeNet-5 with the second pooling written AvgPool2D(2) where torch has
MaxPool2d(2) (LeNet's original subsampling averaged, and the porter followed the paper instead of the code):
the first pool agrees, the second averages each 2x2 window instead of taking its maximum.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.Conv2D(6, 16, 5),
            nn.ReLU(),
            nn.AvgPool2D(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        x = self.features(x)
        x = x.reshape([x.shape[0], -1])
        return self.classifier(x)
