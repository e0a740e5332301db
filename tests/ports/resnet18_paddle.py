"""ResNet-18 in paddle, ported by hand from resnet18_torch.py (no paddle.vision import): the same
module names (conv1, bn1, layer1.0.conv1, ..., fc), BatchNorm2D with torch's defaults
(momentum=0.9 is torch's 0.1, epsilon=1e-5), bias_attr=False where torch has bias=False.

With resnet18_torch.py it is the benchmark pair for parity.diff's cost on an 11M-parameter model.
"""

import paddle
from paddle import nn


class BasicBlock(nn.Layer):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2D(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(planes, momentum=0.9, epsilon=1e-5)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(planes, planes, kernel_size=3, stride=1, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(planes, momentum=0.9, epsilon=1e-5)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2D(in_planes, planes, kernel_size=1, stride=stride, bias_attr=False),
                nn.BatchNorm2D(planes, momentum=0.9, epsilon=1e-5),
            )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


class ResNet18(nn.Layer):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2D(3, 64, kernel_size=7, stride=2, padding=3, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(64, momentum=0.9, epsilon=1e-5)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, stride=1)
        self.layer2 = self._make_layer(128, stride=2)
        self.layer3 = self._make_layer(256, stride=2)
        self.layer4 = self._make_layer(512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2D((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.in_planes, planes, stride), BasicBlock(planes, planes, 1)]
        self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = paddle.flatten(self.avgpool(x), 1)
        return self.fc(x)
