"""A wrong port (torch half): a ReLU LeNet for 1x28x28 with nn.Dropout(0.5) after each hidden layer of the
400-120-84-10 classifier; torch's dropout scales the kept units by 1/(1-p) in training and is the identity in eval.
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
            nn.Dropout(0.5),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
