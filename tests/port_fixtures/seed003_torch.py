"""Seed 003's MyLeNet5 (torch) from ../shared/seeds/003_7a04d7db3a8eb725.txt, lines 54-83 (the article's
first copy; its "完整代码" section has the class again at lines 267-296, and the two copies are identical
line for line). The article lost the code's indentation: it is re-indented here (the class line at 0, the
two `def` lines at 4, every other line, comment lines included, at 8) and nothing else is changed.
Added: this docstring and `from torch import nn` (the article's full listing imports it so, line 257,
before the class). Left out: the article's other code (data loading, training, plotting).
It is LeNet-5 with sigmoid: conv 6@5x5 padding 2, one nn.Sigmoid module called twice, AvgPool2d 2,
conv 16@5x5, AvgPool2d 2, conv 120@5x5, nn.Flatten, 120-84-10 (no activation between f6 and output).
"""

from torch import nn

class MyLeNet5(nn.Module): # 定义一个继承自 nn.Module 的类
    def __init__(self):
        super(MyLeNet5, self).__init__() # 初始化父类
        # 定义 LeNet-5 网络的层结构
        self.c1 = nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5, padding=2)
        # 第一层卷积:输入通道为 1(灰度图像),输出通道为 6,卷积核大小为 5×5,padding=2 保持输出尺寸不变
        self.Sigmoid = nn.Sigmoid() # 定义 Sigmoid 激活函数
        self.s2 = nn.AvgPool2d(kernel_size=2, stride=2)
        # 第二层:平均池化层,窗口大小为 2×2,步幅为 2,将特征图缩小一半
        self.c3 = nn.Conv2d(in_channels=6, out_channels=16, kernel_size=5)
        # 第三层卷积:输入通道为 6,输出通道为 16,卷积核大小为 5×5
        self.s4 = nn.AvgPool2d(kernel_size=2, stride=2)
        # 第四层:平均池化层,窗口大小为 2×2,步幅为 2
        self.c5 = nn.Conv2d(in_channels=16, out_channels=120, kernel_size=5)
        # 第五层卷积:输入通道为 16,输出通道为 120,卷积核大小为 5×5
        self.flatten = nn.Flatten() # 展平操作,将多维特征图转为一维向量
        self.f6 = nn.Linear(120, 84)
        # 全连接层:输入为 120,输出大小为 84 的向量
        self.output = nn.Linear(84, 10)
        # 输出层:输入为 84,输出大小为 10 的向量(10 个分类)
    def forward(self, x): # 定义前向传播逻辑
        x = self.Sigmoid(self.c1(x)) # 第一层卷积 + 激活
        x = self.s2(x) # 第二层池化
        x = self.Sigmoid(self.c3(x)) # 第三层卷积 + 激活
        x = self.s4(x) # 第四层池化
        x = self.c5(x) # 第五层卷积
        x = self.flatten(x) # 展平为一维向量
        x = self.f6(x) # 第六层全连接层
        x = self.output(x) # 第七层输出层
        return x
