#!/usr/bin/python3
"""The worker bench's baseline: the same fine-tuning written in PyTorch with its DataLoader.

Usage: pytorch_finetune.py MODEL.pt TRAIN_EXAMPLES EPOCHS BATCH THREADS SPARSITY
Loads the TorchScript model, prunes it as NNI's LevelPruner does (default op types),
reads Fashion-MNIST's train split from Debian's dataset-fashion-mnist, normalizes it,
and fine-tunes with SGD over a shuffling DataLoader, re-applying the masks after every
step, as the worker does. Prints one JSON line: images/s of each epoch's training loop.
"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata"))
from make_trial_data import level_prune, read_idx  # noqa: E402

MEAN, STD, LR = 0.2860, 0.3530, 0.05


def main():
    model_path, examples, epochs, batch, threads, sparsity = sys.argv[1:7]
    examples, epochs, batch, threads, sparsity = int(examples), int(epochs), int(batch), int(threads), float(sparsity)
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x = (read_idx("train-images-idx3-ubyte.gz")[:examples].float().div(255).unsqueeze(1) - MEAN) / STD
    y = read_idx("train-labels-idx1-ubyte.gz")[:examples].long()
    model = torch.jit.load(model_path)
    masks = level_prune(model, sparsity)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    model.train()
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = 0
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(inputs), labels)
            loss.backward()
            for w, m in masks:
                w.grad.mul_(m)
            optimizer.step()
            with torch.no_grad():
                for w, m in masks:
                    w.mul_(m)
            seen += inputs.shape[0]
        rates.append(seen / (time.perf_counter() - start))
    print(json.dumps({"images_per_second": rates}))


if __name__ == "__main__":
    main()
