#!/usr/bin/python3
"""Writes the small TorchScript models the compression tests use (Debian's python3-torch).

Usage: make_models.py OUT_DIR
  small_cnn.pt     conv1(1->8,3x3)+bn1+relu -> conv2(8->16,3x3)+bn2+relu -> pool -> fc1(16*5*5->32)
                   -> relu -> fc2(32->10); input [N, 1, 28, 28] (Fashion-MNIST shaped)
  residual_cnn.pt  stem conv -> two residual blocks whose convs feed an add (channel
                   dependencies), the same Block class twice (shared TorchScript type)
  grouped_cnn.pt   conv1 -> grouped conv2 (groups=2) -> depthwise conv3 -> head
  resnet_mini.pt   torchvision's ResNet structure (BasicBlock, `out += identity`,
                   downsample Sequential, adaptive pool, flatten) at widths 8/16, scripted
  resnet_mini_traced.pt  the same model exported with torch.jit.trace instead
  mobilenet_mini.pt      torchvision's MobileNetV2 structure (Conv-BN-ReLU6 Sequentials,
                   inverted residuals whose skip is an `if` in forward, depthwise convs)
  cat_cnn.pt       conv1 -> conv2 whose channels meet torch.cat along channels (the speedup
                   pass has no rule for it: conv2 stays masked, conv1 shrinks)
  tiny_idx/        256 Fashion-MNIST-shaped samples in IDX format (gzipped), for the
                   data-driven algorithms' tests: label k brightens row band k
Weights are random (seeded) and never zero, so pruning tests are meaningful.
"""
import gzip
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv_a = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return F.relu(x + self.conv_b(F.relu(self.conv_a(x))))


class ResidualCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block1 = Block(8)
        self.block2 = Block(8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.block2(self.block1(F.relu(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


class GroupedCnn(nn.Module):
    """conv2 is a grouped conv (groups=2) fed by conv1; conv3 is depthwise."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))
        return self.head(x.mean(dim=(2, 3)))


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, as written there."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNetMini(nn.Module):
    """torchvision.models.ResNet's layout (two stages of two BasicBlocks), one input channel."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(2)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        downsample = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, 2, downsample), BasicBlock(16, 16))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class CatCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        y = F.relu(self.conv2(F.relu(self.conv1(x))))
        z = torch.cat([y, y * 2], 1)
        return self.head(z.mean(dim=(2, 3)))


def conv_bn_relu6(inp, oup, kernel, stride, groups=1):
    """torchvision's Conv2dNormActivation with ReLU6."""
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """torchvision.models.mobilenetv2.InvertedResidual, as written there."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu6(inp, hidden, 1, 1))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetMini(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu6(1, 8, 3, 2), InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 16, 2, 4),
            InvertedResidual(16, 16, 1, 4), conv_bn_relu6(16, 32, 1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def randomize(model, seed, fan_in_scaled=False):
    """Seeded random weights, never exactly zero. fan_in_scaled: He-style std
    sqrt(2 / fan_in) for weights, so that a deep model run with eval-mode batch norm
    (as a model traced in eval mode always is) keeps its activations in range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = 0.5
            if fan_in_scaled and p.dim() > 1:
                std = (2.0 / (p[0].numel())) ** 0.5
            p.copy_(torch.randn(p.shape, generator=g) * std)
            # Never exactly zero: pruning tests must see real magnitudes.
            p.add_(torch.where(p >= 0, 1e-3, -1e-3) * (std / 0.5))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return model.eval()


def write_tiny_idx(out):
    g = torch.Generator().manual_seed(3)
    n = 256
    labels = torch.randint(0, 10, (n,), generator=g)
    images = (torch.rand((n, 28, 28), generator=g) * 100).to(torch.uint8)
    for i in range(n):
        k = int(labels[i])
        images[i, 2 * k + 4: 2 * k + 6, :] = 250
    os.makedirs(os.path.join(out, "tiny_idx"), exist_ok=True)
    def write(name, payload):
        # mtime=0 keeps the output byte-identical from run to run (cacheable).
        with open(os.path.join(out, "tiny_idx", name), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
                f.write(payload)

    write("train-images-idx3-ubyte.gz",
          struct.pack(">IIII", 0x803, n, 28, 28) + bytes(images.flatten().tolist()))
    write("train-labels-idx1-ubyte.gz",
          struct.pack(">II", 0x801, n) + bytes(labels.to(torch.uint8).tolist()))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_tiny_idx(out)
    torch.jit.script(randomize(SmallCnn(), 1)).save(os.path.join(out, "small_cnn.pt"))
    torch.jit.script(randomize(ResidualCnn(), 2)).save(os.path.join(out, "residual_cnn.pt"))
    torch.jit.script(randomize(GroupedCnn(), 4)).save(os.path.join(out, "grouped_cnn.pt"))
    resnet = randomize(ResNetMini(), 5, fan_in_scaled=True)
    torch.jit.script(resnet).save(os.path.join(out, "resnet_mini.pt"))
    example = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    torch.jit.trace(resnet, example).save(os.path.join(out, "resnet_mini_traced.pt"))
    torch.jit.script(randomize(CatCnn(), 8)).save(os.path.join(out, "cat_cnn.pt"))
    torch.jit.script(randomize(MobileNetMini(), 7, fan_in_scaled=True)).save(os.path.join(out, "mobilenet_mini.pt"))


if __name__ == "__main__":
    main()
