"""Seed 000's LeNet (torch), verbatim from ../shared/seeds/000_74b2314717a968ef.txt, lines 31-69: the
article's whole code block (its imports, the class, and its guarded `if __name__ == '__main__'` demo, which
does nothing under import), trailing spaces included. Added: this docstring only. It is the Caffe LeNet:
conv 20@5x5, ReLU, 2x2 max pool, conv 50@5x5, ReLU, AdaptiveMaxPool2d((4, 4)), z.view(-1, 800), 800-500-10.
"""

import torch
import torch.nn as nn

class LeNet(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        
        self.features = nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=20, kernel_size=5, stride=1, padding=0),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=(2, 2), stride=2),
            nn.Conv2d(in_channels=20, out_channels=50, kernel_size=5, stride=1, padding=0),
            nn.ReLU(),
            # nn.MaxPool2d(kernel_size=(2, 2), stride=2),
            nn.AdaptiveMaxPool2d((4, 4))  # 这个是为了不止让限制为28x28的输入图像
        )

        self.classify = nn.Sequential(
            nn.Linear(50 * 4 * 4, 500),
            nn.ReLU(),
            nn.Linear(500, 10)
        )
    

    def forward(self, x):
        z = self.features(x)
        z = z.view(-1, 800)
        z = self.classify(z) 
        return z
    

if __name__ == '__main__':
    net = LeNet()
    img = torch.randn(2, 1, 28, 28)
    scores = net(img)
    print(scores)
    probs = torch.softmax(scores, dim=1)
    print(probs)
