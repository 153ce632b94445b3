# Attack parity benchmark, PyTorch side: loads the weights Kestrel trained (safetensors, read here with the
# standard library so no extra package is needed) into the same MLP, puts Kestrel's input normalization in
# front of it, and runs FGSM and PGD-10 on unnormalized [0, 1] pixel tensors of the Fashion-MNIST test set.
# Prints one JSON object per (attack, epsilon): accuracy and the attack time of every repeat.
#
# Usage: python torch_attack.py OUT_DIR [--repeats R] [--threads T] [--test-subset N]
import argparse
import gzip
import json
import os
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(raw[base + a:base + b]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def read_idx(images, labels, limit):
    with gzip.open(os.path.join(DATA, images)) as f:
        raw = f.read()
    n, h, w = struct.unpack(">III", raw[4:16])
    x = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(n, 1, h, w).float() / 255.0
    with gzip.open(os.path.join(DATA, labels)) as f:
        y = torch.frombuffer(bytearray(f.read()[8:]), dtype=torch.uint8).long()
    if limit:
        x, y = x[:limit], y[:limit]
    return x, y


class Mlp(nn.Module):
    """784-256-128-10 with ReLU (configs/models/mlp.yaml); the normalization is the first layer."""

    def __init__(self, w, mean, std):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 256), nn.Linear(256, 128), nn.Linear(128, 10)
        with torch.no_grad():
            for name in ("fc1", "fc2", "fc3"):
                getattr(self, name).weight.copy_(w[name + ".weight"])
                getattr(self, name).bias.copy_(w[name + ".bias"])
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, x):
        x = ((x - self.mean) / self.std).flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def attack(model, x0, y, eps, steps, alpha, random_start, gen):
    """FGSM (steps = 1, alpha = eps) or L-inf PGD, as in Madry et al.'s reference code."""
    x = x0.clone()
    if random_start:
        x = (x + torch.empty_like(x).uniform_(-eps, eps, generator=gen)).clamp(0, 1)
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x = x + alpha * g.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)
    return x.detach()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test-subset", type=int, default=0)
    ap.add_argument("--batch", type=int, default=500)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    norm = json.load(open(os.path.join(a.out, "normalizer.json")))
    model = Mlp(read_safetensors(os.path.join(a.out, "model.safetensors")), norm["mean"], norm["stddev"]).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = read_idx("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", a.test_subset)
    with torch.no_grad():
        clean = sum(int((model(x[i:i + a.batch]).argmax(1) == y[i:i + a.batch]).sum())
                    for i in range(0, len(y), a.batch))
    for eps in (0.05, 0.1):
        for name, steps, rs in (("fgsm", 1, False), ("pgd", 10, False), ("pgd", 10, True)):
            alpha = eps if name == "fgsm" else 2.5 * eps / steps
            times = []
            for _ in range(a.repeats):
                gen = torch.Generator().manual_seed(1)
                t0 = time.perf_counter()
                correct = 0
                for i in range(0, len(y), a.batch):
                    xb, yb = x[i:i + a.batch], y[i:i + a.batch]
                    xa = attack(model, xb, yb, eps, steps, alpha, rs, gen)
                    with torch.no_grad():
                        correct += int((model(xa).argmax(1) == yb).sum())
                times.append(time.perf_counter() - t0)
            print(json.dumps({"side": "torch " + torch.__version__, "attack": name, "steps": steps,
                              "random_start": rs, "epsilon": eps, "accuracy": correct / len(y), "correct": correct,
                              "n": len(y), "clean_accuracy": clean / len(y), "seconds": times,
                              "threads": a.threads}), flush=True)


if __name__ == "__main__":
    main()
