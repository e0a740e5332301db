"""A wrong port (paddle half): the BatchNorm LeNet with momentum=0.1 copied over as it is written in
torch. Paddle's momentum is the weight of the old running average (running = momentum * running + (1 -
momentum) * batch), so the right value is 0.9 (paddle's default); with 0.1 every training step replaces 90%
of the running mean and variance by the batch's. Outputs agree in eval and in train; the running buffers
differ after the first step.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2D(1, 6, 5),
            nn.BatchNorm2D(6, momentum=0.1),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.Conv2D(6, 16, 5),
            nn.BatchNorm2D(16, momentum=0.1),
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
