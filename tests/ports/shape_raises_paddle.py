"""A wrong port (paddle half): the ReLU LeNet-5 with fc1 = Linear(16 * 4 * 4, 120), the size of an unpadded
first convolution (28 -> 24 -> 12 -> 8 -> 4), where this port keeps torch's padding 2 and so 16x5x5 = 400
features: the forward raises inside fc1 (a matmul of 400 by 256), and torch's fc1 weight cannot be copied into it.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2D(1, 6, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2D(2)
        self.conv2 = nn.Conv2D(6, 16, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2D(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(16 * 4 * 4, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu4(self.fc2(self.relu3(self.fc1(x))))
        return self.fc3(x)
