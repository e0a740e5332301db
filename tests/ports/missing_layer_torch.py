"""A wrong port (torch half): the ReLU LeNet-5 for 1x28x28 (conv 6@5x5 padding 2, ReLU, 2x2 max pool, conv
16@5x5, ReLU, 2x2 max pool, flatten), its classifier Linear 400->120, ReLU, Linear 120->84, ReLU, Linear 84->10.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(400, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
