"""A right port (paddle half): the ReLU LeNet with nn.Dropout(0.5) after each hidden layer of the classifier.
Paddle's default mode, upscale_in_train, is torch's dropout: scale the kept units by 1/(1-p) in training,
the identity in eval.
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
            nn.MaxPool2D(2),
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
