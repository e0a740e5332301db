"""A wrong port (paddle half): the BatchNorm LeNet with BatchNorm2D(..., epsilon=1e-3), an epsilon taken
from a Keras or TensorFlow model instead of torch's 1e-5: every normalisation divides by sqrt(var + 1e-3)
instead of sqrt(var + 1e-5), which shows in eval from the first BatchNorm on.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(1, 6, 5),
            nn.BatchNorm2D(6, epsilon=1e-3),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.Conv2D(6, 16, 5),
            nn.BatchNorm2D(16, epsilon=1e-3),
            nn.ReLU(),
            nn.MaxPool2D(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120),
            nn.ReLU(),
            nn.Linear(120, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
