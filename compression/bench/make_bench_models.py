#!/usr/bin/python3
"""Writes the models `./dev bench speedup` prunes and speeds up (Debian's python3-torch).

Usage: make_bench_models.py OUT_DIR
  seed_cnn.pt   the seed's model (NNI's auto-compress example, reference 1.9): conv 1->32
                3x3, ReLU, conv 32->64 3x3, ReLU, max-pool 2, Dropout2d, flatten (9216),
                fc 9216->128, ReLU, Dropout, fc 128->10, log-softmax; input [N, 1, 28, 28]
  resnet18.pt   torchvision's ResNet-18 layout (BasicBlocks [2, 2, 2, 2], `out += identity`,
                downsample Sequentials) at widths 16/32/64/128 for CIFAR-shaped input
                [N, 3, 32, 32] (3x3 stem, no max-pool, as CIFAR ResNets do)
Weights are random (seeded, He-scaled, never zero); the benchmark measures time, not accuracy.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# torchvision's BasicBlock, as the test models write it.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata"))
from make_models import BasicBlock  # noqa: E402


class SeedCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        # The example's Dropout2d on a 2-D tensor is deprecated (LibTorch warns on every
        # forward); plain Dropout is what it does there.
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


class ResNet18(nn.Module):
    def __init__(self, widths=(16, 32, 64, 128), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = widths[0]
        stages = []
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes))
            stages.append(nn.Sequential(BasicBlock(inplanes, planes, stride, downsample),
                                        BasicBlock(planes, planes)))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            std = (2.0 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * std)
            p.add_(torch.where(p >= 0, 1e-4, -1e-4))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.jit.script(randomize(SeedCnn(), 1)).save(os.path.join(out, "seed_cnn.pt"))
    torch.jit.script(randomize(ResNet18(), 2)).save(os.path.join(out, "resnet18.pt"))


if __name__ == "__main__":
    main()
