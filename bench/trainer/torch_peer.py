#!/usr/bin/env python3
"""PyTorch peer of bench/trainer/train_bench.cpp: same data (all 60,000 Fashion-MNIST training
images, normalised by the training set's mean and std), same models, batch 128, Adam lr 1e-3,
torch.set_num_threads(THREADS). Prints one JSON object with seconds per training epoch, test
accuracy after every epoch, and inference images/s at batch 256 (eval mode, best of 3 passes).
Usage: torch_peer.py mlp|cnn EPOCHS THREADS [SEED]
"""
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn

DATA = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")


def load(kind):
    with gzip.open(f"{DATA}/{kind}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    with gzip.open(f"{DATA}/{kind}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def model(which):
    if which == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    which, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    mean, std = xtr.mean().item(), xtr.std(unbiased=False).item()
    xtr = (xtr - mean) / std
    xte = (xte - mean) / std
    net = model(which)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n, bs = xtr.shape[0], 128
    out = {"impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(), "epochs": []}
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n)
        t0 = time.perf_counter()
        total = 0.0
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        train_seconds = time.perf_counter() - t0
        net.eval()
        with torch.no_grad():
            correct = sum((net(xte[s:s + 256]).argmax(1) == yte[s:s + 256]).sum().item()
                          for s in range(0, xte.shape[0], 256))
        out["epochs"].append({"epoch": epoch + 1, "train_seconds": train_seconds,
                              "test_accuracy": correct / xte.shape[0], "train_loss": total / n})
    best = 1e30
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            for s in range(0, xte.shape[0], 256):
                net(xte[s:s + 256])
            best = min(best, time.perf_counter() - t0)
    out["inference_images_per_second"] = xte.shape[0] / best
    out["params"] = sum(p.numel() for p in net.parameters())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
