#!/usr/bin/python3
"""Fashion-MNIST inputs for the worker's trial tests, and the PyTorch reference result.

Usage: make_trial_data.py OUT_DIR
  fashion_model.pt      SmallCnn (compression/testdata/make_models.py) trained one epoch
                        on Fashion-MNIST train examples 2000..11999 (the "pre-trained"
                        model a user brings), scripted
  fashion_train.tar     train examples 0..1999 as IDX (gzipped) in a tar: a dataset artifact
  fashion_test.tar      test examples 0..999 likewise
  cropped_test.tar      test examples 0..99 cropped to 14x14: data the model cannot take
  tensors_tuple.pt      torch.save((images, labels)) of test examples 0..63, images
                        float in [0, 1] with a channel axis; tensors_dict.pt the same as
                        {"inputs": ..., "targets": ...}
  fashion_reference.json  what the trial in the test must reproduce, computed here with
                        Debian's PyTorch: NNI's LevelPruner at sparsity 0.5 on the default
                        op types, then FINETUNE_EPOCHS epochs of SGD on fashion_train in
                        order (no shuffle) with masks re-applied after every step, then
                        top-1 accuracy on fashion_test
Inputs are normalized as the trial's recipe says: (x/255 - MEAN) / STD.
"""
import gzip
import io
import json
import os
import struct
import sys
import tarfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "compression", "testdata"))
from make_models import SmallCnn, randomize  # noqa: E402

SOURCE = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
LR, BATCH, FINETUNE_EPOCHS, SPARSITY, THREADS = 0.05, 32, 2, 0.5, 2


def read_idx(name):
    with gzip.open(os.path.join(SOURCE, name), "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic == 0x803:
        rows, cols = struct.unpack(">II", data[8:16])
        return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).view(n, rows, cols)
    return torch.frombuffer(bytearray(data[8:]), dtype=torch.uint8).view(n)


def idx_bytes(images, labels):
    n, rows, cols = images.shape
    return (struct.pack(">IIII", 0x803, n, rows, cols) + bytes(images.flatten().tolist()),
            struct.pack(">II", 0x801, n) + bytes(labels.tolist()))


def write_tar(path, prefix, images, labels):
    image_bytes, label_bytes = idx_bytes(images, labels)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, payload in ((f"{prefix}-images-idx3-ubyte.gz", image_bytes),
                              (f"{prefix}-labels-idx1-ubyte.gz", label_bytes)):
            buffer = io.BytesIO()
            # mtime=0 and fixed tar metadata keep the output byte-identical (cacheable).
            with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:
                f.write(payload)
            info = tarfile.TarInfo(name)
            info.size = buffer.tell()
            info.mtime = 0
            info.mode = 0o644
            buffer.seek(0)
            tar.addfile(info, buffer)


def level_prune(model, sparsity):
    """NNI's LevelPruner on the default op types (Conv2d, Linear here): zeroes the
    int(numel * sparsity) smallest |w| of each weight; returns (weight, mask) pairs."""
    masks = []
    with torch.no_grad():
        for _, module in model.named_modules():
            if module.original_name not in ("Conv2d", "Linear"):
                continue
            w = module.weight
            k = int(w.numel() * sparsity)
            threshold = torch.topk(w.abs().view(-1), k, largest=False)[0].max()
            mask = torch.gt(w.abs(), threshold).to(w.dtype)
            w.mul_(mask)
            masks.append((w, mask))
    return masks


def normalize(images):
    return (images.to(torch.float32).div(255).unsqueeze(1) - MEAN) / STD


def train_epoch(model, x, y, masks=None):
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for start in range(0, x.shape[0], BATCH):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[start:start + BATCH]), y[start:start + BATCH])
        loss.backward()
        if masks:
            for p, m in masks:
                p.grad.mul_(m)
        optimizer.step()
        if masks:
            with torch.no_grad():
                for p, m in masks:
                    p.mul_(m)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(THREADS)
    train_images, train_labels = read_idx("train-images-idx3-ubyte.gz"), read_idx("train-labels-idx1-ubyte.gz")
    test_images, test_labels = read_idx("t10k-images-idx3-ubyte.gz"), read_idx("t10k-labels-idx1-ubyte.gz")
    write_tar(os.path.join(out, "fashion_train.tar"), "train", train_images[:2000], train_labels[:2000])
    write_tar(os.path.join(out, "fashion_test.tar"), "t10k", test_images[:1000], test_labels[:1000])
    first = test_images[:64].float().div(255).unsqueeze(1)
    torch.save((first, test_labels[:64].long()), os.path.join(out, "tensors_tuple.pt"))
    torch.save({"inputs": first, "targets": test_labels[:64].long()},
               os.path.join(out, "tensors_dict.pt"))
    write_tar(os.path.join(out, "cropped_test.tar"), "t10k",
              test_images[:100, :14, :14].contiguous(), test_labels[:100])

    torch.manual_seed(0)
    model = randomize(SmallCnn(), 11, fan_in_scaled=True)
    train_epoch(model, normalize(train_images[2000:12000]), train_labels[2000:12000].long())
    scripted = torch.jit.script(model.eval())
    scripted.save(os.path.join(out, "fashion_model.pt"))

    # The reference trial on a copy of exactly what was saved.
    model = torch.jit.load(os.path.join(out, "fashion_model.pt"))
    x_train, y_train = normalize(train_images[:2000]), train_labels[:2000].long()
    x_test, y_test = normalize(test_images[:1000]), test_labels[:1000].long()
    pretrained = accuracy(model, x_test, y_test)
    masks = level_prune(model, SPARSITY)
    zero_shot = accuracy(model, x_test, y_test)
    for _ in range(FINETUNE_EPOCHS):
        train_epoch(model, x_train, y_train, masks)
    reference = {
        "pretrained_accuracy": pretrained,
        "zero_shot_accuracy": zero_shot,
        "accuracy": accuracy(model, x_test, y_test),
        "mean": MEAN, "std": STD, "lr": LR, "batch_size": BATCH,
        "finetune_epochs": FINETUNE_EPOCHS, "sparsity": SPARSITY, "threads": THREADS,
    }
    with open(os.path.join(out, "fashion_reference.json"), "w") as f:
        json.dump(reference, f, indent=1)


if __name__ == "__main__":
    main()
