#!/usr/bin/env python3
"""PyTorch peer of bench/cuda/cuda_bench.cpp on the same GPU: same models (bench/trainer/torch_peer.py),
Adam lr 1e-3, the data set kept on the GPU and shuffled there, loss.item() every step (the Kestrel
loop reads its loss back every step too), FP32 with TF32 off (Kestrel's default). Prints one JSON
object per configuration (one process for all, so CUDA starts once) with seconds per training
epoch and test accuracy after each epoch.
Usage: torch_gpu_peer.py MODEL:BATCH[,MODEL:BATCH...] EPOCHS [SEED]   e.g. mlp:128,cnn:1024 3
Without the Fashion-MNIST files it uses random images of the same shape ("data": "synthetic").
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


def load(kind, n):
    try:
        with gzip.open(f"{DATA}/{kind}-images-idx3-ubyte.gz") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
        with gzip.open(f"{DATA}/{kind}-labels-idx1-ubyte.gz") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(y), "fashion-mnist"
    except OSError:
        g = torch.Generator().manual_seed(n)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), "synthetic"


def model(which):
    if which == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    configs, epochs = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    xtr, ytr, data = load("train", 60000)
    xte, yte, _ = load("t10k", 10000)
    mean, std = xtr.mean().item(), xtr.std(unbiased=False).item()
    xtr = ((xtr - mean) / std).to(dev)
    xte = ((xte - mean) / std).to(dev)
    ytr, yte = ytr.to(dev), yte.to(dev)
    for config in configs.split(","):
        which, bs = config.split(":")
        torch.manual_seed(seed)
        run(which, int(bs), epochs, xtr, ytr, xte, yte, data, dev)


def run(which, bs, epochs, xtr, ytr, xte, yte, data, dev):
    net = model(which).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    n = xtr.shape[0]
    out = {"impl": "pytorch-cuda", "torch": torch.__version__, "model": which, "batch": bs, "data": data,
           "device": torch.cuda.get_device_name(0), "epochs": []}
    for epoch in range(epochs):
        net.train()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(n, device=dev)
        total = 0.0
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            xb, yb = xtr[idx], ytr[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * xb.shape[0]
        torch.cuda.synchronize()
        train_seconds = time.perf_counter() - t0
        net.eval()
        with torch.no_grad():
            correct = sum((net(xte[s:s + 1024]).argmax(1) == yte[s:s + 1024]).sum().item()
                          for s in range(0, xte.shape[0], 1024))
        out["epochs"].append({"epoch": epoch + 1, "train_seconds": train_seconds,
                              "test_accuracy": correct / xte.shape[0], "train_loss": total / n})
    out["params"] = sum(p.numel() for p in net.parameters())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
