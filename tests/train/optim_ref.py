"""PyTorch references for tests/train/{lr_schedule,sgd,grad_clip}_test.cpp.

usage: optim_ref.py MODE IN.json OUT.json
  lr:   {"lr", "warmup_steps", "max_steps", "min_lr_ratio", "decay", "steps"}
        -> {"lrs": [...]}: torch's LambdaLR over SGD, the rate in the optimizer before update s
           (s = 0..steps-1), the lambda being nanoGPT's get_lr with the warmup of liandan's docs.
  sgd:  {"params": [[...]], "weight_decays": [one per param], "grads": [[[...] per param] per step],
         "lr", "momentum", "nesterov"} -> {"params": [[...] per param] after each step}
  clip: {"grads": [[...] per param], "max_norm"} -> {"norm", "grads": [[...]]}
"""
import json
import math
import sys

import torch


def get_lr(cfg, it):
    lr, warmup, max_steps = cfg["lr"], cfg["warmup_steps"], cfg["max_steps"]
    min_lr = cfg["min_lr_ratio"] * lr
    if it < warmup:
        return lr * (it + 1) / warmup
    if cfg["decay"] == "constant":
        return lr
    if it >= max_steps:
        return min_lr
    ratio = (it - warmup) / (max_steps - warmup)
    if cfg["decay"] == "cosine":
        coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))
    else:
        coeff = 1.0 - ratio
    return min_lr + coeff * (lr - min_lr)


def lr_mode(cfg):
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: get_lr(cfg, s) / cfg["lr"])
    lrs = []
    for _ in range(cfg["steps"]):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return {"lrs": lrs}


def sgd_mode(cfg):
    params = [torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for v in cfg["params"]]
    groups = [{"params": [p], "weight_decay": wd} for p, wd in zip(params, cfg["weight_decays"])]
    opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"], nesterov=cfg["nesterov"])
    out = []
    for step_grads in cfg["grads"]:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        out.append([p.detach().tolist() for p in params])
    return {"params": out}


def clip_mode(cfg):
    params = [torch.nn.Parameter(torch.zeros(len(g))) for g in cfg["grads"]]
    for p, g in zip(params, cfg["grads"]):
        p.grad = torch.tensor(g, dtype=torch.float32)
    norm = torch.nn.utils.clip_grad_norm_(params, cfg["max_norm"])
    return {"norm": float(norm), "grads": [p.grad.tolist() for p in params]}


def main():
    mode, src, dst = sys.argv[1:4]
    with open(src) as f:
        cfg = json.load(f)
    result = {"lr": lr_mode, "sgd": sgd_mode, "clip": clip_mode}[mode](cfg)
    with open(dst, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
