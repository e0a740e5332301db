"""A right port (paddle half) of the BatchNorm LeNet, with BatchNorm2D's defaults (momentum 0.9, which is
torch's 0.1, and epsilon 1e-5). As written it is what a porter should write, yet paddle folds the biased
batch variance (divided by n) into its running variance where torch folds the unbiased one (divided by
n-1), so the running variances differ by a factor close to n/(n-1) on the batch part after a training step.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(1, 6, 5),
            nn.BatchNorm2D(6),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.Conv2D(6, 16, 5),
            nn.BatchNorm2D(16),
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
