"""A wrong port (paddle half): the named-layer LeNet-5 whose forward moves the channels last before flattening,
x.transpose([0, 2, 3, 1]).flatten(1) (NHWC order, as in a TensorFlow or Keras model), where torch flattens
NCHW: every layer computes as in torch, but fc1 receives its 400 inputs in another order, so its weights
(copied from torch) meet the wrong features.
"""

from paddle import nn


class Net(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2D(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2D(6, 16, 5)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2D(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = x.transpose([0, 2, 3, 1]).flatten(1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)
