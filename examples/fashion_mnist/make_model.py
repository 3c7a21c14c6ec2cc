"""Exports the demo's untrained LeNet-5 as TorchScript (python3-torch only exports it;
`autocompress train` trains it with the project's own training code).

LeNet-5 for 28x28 inputs: conv 1->6 5x5 (pad 2), ReLU, max-pool 2, conv 6->16 5x5, ReLU,
max-pool 2, fc 400->120, ReLU, fc 120->84, ReLU, fc 84->10: 61,706 parameters.

usage: python3 make_model.py OUT.pt
"""
import sys

import torch
from torch import nn


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def main():
    torch.manual_seed(1)
    model = LeNet5().eval()
    torch.jit.save(torch.jit.script(model), sys.argv[1])
    print(f"{sys.argv[1]}: LeNet-5, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
