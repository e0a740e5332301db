"""A wrong port (torch half): a small net for 3x16x16 images that downsamples with padded average pooling:
conv 3->8 3x3 (padding 1), ReLU, AvgPool2d(3, stride=2, padding=1), conv 8->16 3x3 (padding 1), ReLU,
AvgPool2d(3, stride=2, padding=1), then 256-64-10. Torch's average counts the zero padding
(count_include_pad=True by default): a border window divides by 9.
"""

from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(3, stride=2, padding=1),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AvgPool2d(3, stride=2, padding=1),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
