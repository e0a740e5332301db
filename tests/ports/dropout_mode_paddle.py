"""A wrong port (paddle half): the dropout LeNet with nn.Dropout(0.5, mode="downscale_in_infer"), the mode of
the old fluid dropout, where torch's is paddle's default upscale_in_train: the kept units are not scaled in
training, and in eval every unit is multiplied by 1-p = 0.5 where torch's dropout is the identity.
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
            nn.Dropout(0.5, mode="downscale_in_infer"),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Dropout(0.5, mode="downscale_in_infer"),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
