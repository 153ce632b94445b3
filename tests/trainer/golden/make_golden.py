#!/usr/bin/env python3
"""Writes tests/trainer/golden/tiny_cnn.json: the reference loss trajectory for test_golden.cpp.

An independent reference: PyTorch (Debian's python3-torch 1.13) trains a tiny CNN with BatchNorm
for 10 Adam steps on one fixed batch with label smoothing; the fixture stores the initial weights,
the batch, and the loss before each step. Run once: /usr/bin/python3 tests/trainer/golden/make_golden.py
The test itself needs no Python.
"""
import json
import os

import torch
import torch.nn as nn

torch.manual_seed(1234)
torch.set_num_threads(1)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        # No conv bias: BatchNorm cancels it, so its gradient is rounding noise that Adam would amplify
        # differently in float32 and float64 (the running mean would then differ, the loss would not).
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 3 * 3, 8)
        self.fc2 = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        x = torch.tanh(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


model = Tiny().double()  # double precision: the reference should carry no float32 rounding
x = torch.randn(8, 2, 6, 6, dtype=torch.float64)
y = torch.randint(0, 5, (8,))
# Round everything to float32 first so the C++ side starts from exactly the same numbers.
x = x.float().double()
with torch.no_grad():
    for p in model.parameters():
        p.copy_(p.float().double())
params = {k: v.detach().flatten().tolist() for k, v in model.state_dict().items() if "num_batches" not in k}

lr, smoothing = 0.01, 0.1
opt = torch.optim.Adam(model.parameters(), lr=lr)
loss_fn = nn.CrossEntropyLoss(label_smoothing=smoothing)
losses = []
model.train()
for step in range(10):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    losses.append(loss.item())
    loss.backward()
    opt.step()

out = {
    "generator": "tests/trainer/golden/make_golden.py",
    "torch_version": torch.__version__,
    "model": "conv(2->4,k3,p1,no bias) bn relu maxpool2 flatten fc1(36->8) tanh fc2(8->5)",
    "optimizer": {"kind": "adam", "lr": lr},
    "label_smoothing": smoothing,
    "x_shape": list(x.shape),
    "x": x.flatten().tolist(),
    "y": y.tolist(),
    "params": params,
    "losses": losses,
    "running_mean_after": model.bn.running_mean.tolist(),
    "running_var_after": model.bn.running_var.tolist(),
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_cnn.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path, "losses", losses)
