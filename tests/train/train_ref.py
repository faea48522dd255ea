"""Pretraining in plain PyTorch float32: the reference tests/train/torch_equivalence_test.cpp checks
liandan's trainer (train::pretrain) against, step by step.

  train_ref.py SPEC.json OUT.json

SPEC (written by the test from its RunConfig):
  model       "gpt2" (causal LM) or "bert" (masked LM)
  init        the Hugging Face folder holding the initial weights (liandan's save_pretrained)
  final       the folder liandan's run saved at the end (run/model), compared with our final weights
  batches     safetensors: "inputs" i64 [N, B, T] and "targets" (gpt2) or "labels" (bert, -100 =
              not chosen) i64 [N, B, T]; N = steps * grad_accum micro-batches in the trainer's order
  steps, grad_accum, lr, warmup_steps, max_steps, min_lr_ratio, schedule, weight_decay, beta1,
  beta2, eps, grad_clip: the run configuration's train.* values

OUT: {"losses": [...], "grad_norms": [...], "lrs": [...], "max_weight_diff": d, "relative_weight_diff": r,
      "weights_compared": n}
  losses[s] is step s's mean micro-batch loss, grad_norms[s] its norm before clipping, lrs[s] its
  rate; the weight figures compare our final weights with liandan's (see weight_diffs).

The loop is the usual PyTorch one, written from the torch APIs, not from liandan's code:
torch.optim.AdamW with two parameter groups (weight decay on weight matrices; none on norms, biases
and embeddings, as train/param_groups.hpp chooses them), LambdaLR with the formula of
train/lr_schedule.hpp, loss / grad_accum backward per micro-batch, clip_grad_norm_.
"""
import fnmatch
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
import bert_ref  # noqa: E402
import gpt2_ref  # noqa: E402
import hf_folder  # noqa: E402

# train/param_groups.hpp's defaults: embeddings by name; anything under 2 dimensions by shape.
NO_DECAY = ["*embed*", "*wte*", "*wpe*", "*word_embeddings*", "*position_embeddings*", "*token_type_embeddings*"]
IGNORE = -100


def decays(name, p):
    return p.dim() >= 2 and not any(fnmatch.fnmatchcase(name, pattern) for pattern in NO_DECAY)


def lr_at(spec, step):
    """train/lr_schedule.hpp (nanoGPT's get_lr): warmup, then cosine/linear/constant to a floor."""
    lr, warmup, max_steps = spec["lr"], spec["warmup_steps"], spec["max_steps"]
    if step < warmup:
        return lr * (step + 1) / warmup
    if spec["schedule"] == "constant":
        return lr
    min_lr = spec["min_lr_ratio"] * lr
    if step >= max_steps:
        return min_lr
    ratio = (step - warmup) / (max_steps - warmup)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio)) if spec["schedule"] == "cosine" else 1.0 - ratio
    return min_lr + coeff * (lr - min_lr)


def gpt2_loss(cfg, w, inputs, targets):
    logits = gpt2_ref.forward(cfg, w, inputs, torch.ones_like(inputs))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def bert_loss(cfg, w, inputs, labels):
    """liandan's mlm_loss: the summed cross-entropy over chosen positions / max(chosen, 1)."""
    h, _ = bert_ref.encode(cfg, w, "bert.", inputs, torch.ones_like(inputs), torch.zeros_like(inputs))
    logits = bert_ref.mlm_logits(cfg, w, h)
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE,
                            reduction="sum")
    return total / max(int((labels != IGNORE).sum()), 1)


def load_weights(spec):
    cfg, tensors = hf_folder.read_folder(spec["init"])
    if spec["model"] == "gpt2":
        tensors = gpt2_ref.normalized(tensors, torch.float32)
    return cfg, {k: v.to(torch.float32).requires_grad_(True) for k, v in tensors.items()}


def make_optimizer(spec, w):
    decay = [p for name, p in w.items() if decays(name, p)]
    no_decay = [p for name, p in w.items() if not decays(name, p)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec["weight_decay"]},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec["lr"], betas=(spec["beta1"], spec["beta2"]), eps=spec["eps"])
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(spec, step) / spec["lr"])
    return optimizer, schedule


def weight_diffs(spec, initial, w):
    """How far liandan's final weights are from ours: the largest |difference|, and the norm of all
    differences relative to the norm of our whole update (final - initial). The relative figure is the
    one to assert on: the largest difference sits in a key bias, whose true gradient is 0 (it shifts
    every score of a query row alike), so its rounding noise is all AdamW normalises into steps."""
    _, theirs = hf_folder.read_folder(spec["final"])
    if spec["model"] == "gpt2":
        theirs = gpt2_ref.normalized(theirs, torch.float32)
    assert set(theirs) == set(w), sorted(set(theirs) ^ set(w))
    diff = {k: (w[k].detach() - theirs[k]).double() for k in w}
    update = math.sqrt(sum(float((w[k].detach() - initial[k]).double().pow(2).sum()) for k in w))
    return {"max_weight_diff": max(float(d.abs().max()) for d in diff.values()),
            "relative_weight_diff": math.sqrt(sum(float(d.pow(2).sum()) for d in diff.values())) / update,
            "weights_compared": len(w)}


def train(spec):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg, w = load_weights(spec)
    initial = {k: v.detach().clone() for k, v in w.items()}
    batches, _ = hf_folder.read_safetensors(spec["batches"])
    loss_fn, label_key = (gpt2_loss, "targets") if spec["model"] == "gpt2" else (bert_loss, "labels")
    optimizer, schedule = make_optimizer(spec, w)
    accum = spec["grad_accum"]
    out = {"losses": [], "grad_norms": [], "lrs": []}
    for step in range(spec["steps"]):
        out["lrs"].append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for k in range(accum):
            i = step * accum + k
            loss = loss_fn(cfg, w, batches["inputs"][i], batches[label_key][i])
            (loss / accum).backward()
            step_loss += loss.item() / accum
        clip = spec["grad_clip"] if spec["grad_clip"] > 0 else math.inf  # liandan: 0 = no clipping
        norm = torch.nn.utils.clip_grad_norm_(list(w.values()), clip)
        optimizer.step()
        schedule.step()
        out["losses"].append(step_loss)
        out["grad_norms"].append(float(norm))
    out.update(weight_diffs(spec, initial, w))
    return out


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        spec = json.load(f)
    with open(argv[1], "w") as f:
        json.dump(train(spec), f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
