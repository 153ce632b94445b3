#!/usr/bin/python3
# Reference values for tests/trainer/test_optim.cpp and test_schedule.cpp from torch.optim
# (Debian's python3-torch 1.13; only needed to regenerate or re-check the numbers, never by the tests).
#
# Usage: /usr/bin/python3 tests/trainer/golden_optim.py
# Prints, for each optimizer case of test_optim.cpp, the parameter after steps 1..3 as computed by
# torch.optim in float32, the difference from the values written in the test, and the same for
# the OneCycleLR points of test_schedule.cpp. Exit status 1 if any difference exceeds 2e-6.
import math
import sys

import torch

P0 = [1.0, -2.0, 0.5]
GRADS = [[0.1, -0.2, 0.3], [0.4, 0.0, -0.1], [-0.3, 0.2, 0.2]]

# name: (torch optimizer class, lr, kwargs, values written in test_optim.cpp)
CASES = {
    "Sgd.PlainStepIsMinusLrTimesGrad": (
        torch.optim.SGD, 0.1, dict(momentum=0.0),
        [[0.99, -1.98, 0.47], [0.95, -1.98, 0.48], [0.98, -2.0, 0.46]]),
    "Sgd.MomentumWithCoupledWeightDecay": (
        torch.optim.SGD, 0.1, dict(momentum=0.9, weight_decay=0.01),
        [[0.989, -1.978, 0.4695], [0.938111, -1.956222, 0.4515805],
         [0.921372789, -1.95466558, 0.41500137]]),
    "Sgd.DampeningAppliesFromTheSecondStep": (
        torch.optim.SGD, 0.1, dict(momentum=0.9, dampening=0.5),
        [[0.99, -1.98, 0.47], [0.961, -1.962, 0.448], [0.9499, -1.9558, 0.4182]]),
    "Sgd.Nesterov": (
        torch.optim.SGD, 0.1, dict(momentum=0.9, nesterov=True),
        [[0.981, -1.962, 0.443], [0.8969, -1.9458, 0.4377], [0.91421, -1.96922, 0.38593]]),
    "Adagrad.AccumulatesSquaredGradients": (
        torch.optim.Adagrad, 0.1, dict(eps=1e-10),
        [[0.9, -1.9, 0.4], [0.80298575, -1.9, 0.431622777], [0.861820591, -1.97071068, 0.378170528]]),
    "Adagrad.LrDecayAndWeightDecay": (
        torch.optim.Adagrad, 0.1, dict(eps=1e-10, lr_decay=0.5, weight_decay=0.1),
        [[0.9, -1.9, 0.4], [0.838276824, -1.87139621, 0.411264254],
         [0.857183223, -1.87284766, 0.383176272]]),
    "Adadelta.UsesRunningAveragesOfGradAndUpdate": (
        torch.optim.Adadelta, 1.0, dict(rho=0.9, eps=1e-6),
        [[0.996839302, -1.99683812, 0.496837898], [0.992489092, -1.99683812, 0.498320274],
         [0.996243335, -2.00007765, 0.495683082]]),
    "Rmsprop.PlainWithoutMomentum": (
        torch.optim.RMSprop, 0.01, dict(alpha=0.99, eps=1e-8, momentum=0.0),
        [[0.9000001, -1.90000005, 0.400000033], [0.802957327, -1.90000005, 0.43176607],
         [0.861996765, -1.97106514, 0.377949144]]),
    "Rmsprop.CenteredWithMomentum": (
        torch.optim.RMSprop, 0.01, dict(alpha=0.9, eps=1e-8, momentum=0.5, centered=True),
        [[0.966666678, -1.96666667, 0.46666667], [0.916780682, -1.95000001, 0.460653384],
         [0.911198087, -1.96519517, 0.438528686]]),
    "Adam.BiasCorrectedMoments": (
        torch.optim.Adam, 0.1, dict(betas=(0.9, 0.999), eps=1e-8),
        [[0.90000001, -1.9, 0.400000003], [0.811562364, -1.83299418, 0.359978148],
         [0.793891534, -1.84158096, 0.299669502]]),
    "Adam.CoupledWeightDecayEntersTheMoments": (
        torch.optim.Adam, 0.1, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
        [[0.900000005, -1.9, 0.400000003], [0.805788911, -1.80754, 0.346537847],
         [0.762999018, -1.73891193, 0.276827052]]),
    "Adam.AmsgradUsesTheMaximumSecondMoment": (
        torch.optim.Adam, 0.1, dict(betas=(0.9, 0.999), eps=1e-8, amsgrad=True),
        [[0.90000001, -1.9, 0.400000003], [0.811562364, -1.8330277, 0.359978148],
         [0.793891534, -1.84161447, 0.299669502]]),
    "AdamW.DecoupledDecayShrinksWeightsBeforeTheStep": (
        torch.optim.AdamW, 0.1, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
        [[0.89000001, -1.88, 0.395000003], [0.792662364, -1.79419418, 0.351028148],
         [0.76706491, -1.78483901, 0.28720922]]),
}

TOL = 2e-6


def torch_trajectory(cls, lr, kwargs):
    p = torch.nn.Parameter(torch.tensor(P0, dtype=torch.float32))
    opt = cls([p], lr=lr, **kwargs)
    out = []
    for g in GRADS:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        out.append(p.detach().clone().tolist())
    return out


def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}")
    worst = 0.0
    for name, (cls, lr, kwargs, written) in CASES.items():
        got = torch_trajectory(cls, lr, kwargs)
        diff = max(abs(a - b) for ra, rb in zip(got, written) for a, b in zip(ra, rb))
        worst = max(worst, diff)
        rows = ",\n    ".join("{" + ", ".join(f"{v:.9g}f" for v in row) + "}" for row in got)
        print(f"{name}: max |torch - test| = {diff:.3g}\n    {rows}")

    # OneCycleLR points of test_schedule.cpp (max_lr 1, total 100, defaults otherwise).
    for three_phase, points in ((False, {0: 0.04, 10: 0.295163948, 29: 1.0, 64: 0.500002, 99: 4e-6}),
                                (True, {29: 1.0, 40: 0.697666315, 58: 0.04, 80: 0.0177085609, 99: 4e-6})):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.5)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=100, three_phase=three_phase)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        diff = max(abs(lrs[k] - v) / max(v, 1e-12) for k, v in points.items())
        worst_rel = diff
        print(f"OneCycleLR three_phase={three_phase}: max relative |torch - test| = {worst_rel:.3g}; "
              + ", ".join(f"lr[{k}]={lrs[k]:.9g}" for k in points))
        if worst_rel > 1e-6:
            worst = max(worst, 1.0)

    # CosineAnnealingLR (T_max 100, eta_min 0.001, base 0.1) at the points of test_schedule.cpp.
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100, eta_min=0.001)
    lrs = []
    for _ in range(101):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    cos_points = {0: 0.1, 25: 0.0855017857, 50: 0.0505, 100: 0.001}
    cdiff = max(abs(lrs[k] - v) for k, v in cos_points.items())
    print(f"CosineAnnealingLR: max |torch - test| = {cdiff:.3g}; "
          + ", ".join(f"lr[{k}]={lrs[k]:.9g}" for k in cos_points))
    if cdiff > 1e-7:
        worst = max(worst, 1.0)

    print(f"worst optimizer difference {worst:.3g} (tolerance {TOL})")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    sys.exit(main())
