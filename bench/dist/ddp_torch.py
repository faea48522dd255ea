#!/usr/bin/python3
"""PyTorch DDP twin of liandan_bench_dp (bench/dist/dp_bench.cpp): data-parallel scaling of a GPT-2
training step on the CPU, torch.distributed with the gloo backend.

Model: /work/shared/bench/gpt_model.py's GPT (the peer's, imported), configs tiny and small
(B=8, T=256 per rank); AdamW lr 3e-4, weight decay 0.1 on 2-D weights (as bench_train.py).
--ranks 1: the plain step in one process (no DDP), the baseline. --ranks N > 1: N processes
(torch.multiprocessing, spawn) on 127.0.0.1, the model wrapped in DistributedDataParallel
(bucket_cap_mb = --bucket-mb, DDP's own default 25), each rank on its own random batch.
One step = forward + cross-entropy + backward (DDP all-reduces its buckets during backward) +
AdamW step + zero_grad. The ranks meet at a barrier before each step; a step's time is the slowest
rank's (all_reduce MAX). tokens_per_s = ranks*B*T / median(step time) over --steps timed steps.

Usage: /usr/bin/python3 ddp_torch.py --config tiny [--ranks 2] [--threads 1] [--bucket-mb 25]
           [--steps 10] [--warmup 3] [--peer-dir /work/shared/bench] [--tag S]
Prints one JSON line on stdout (rank 0); progress on stderr.
"""
import argparse
import json
import os
import resource
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def parse():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=["tiny", "small"], default="tiny")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bucket-mb", type=float, default=25.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peer-dir", default=os.path.join(here, "..", "..", "..", "shared", "bench"))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    if args.ranks < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--ranks, --steps and --threads must be >= 1, --warmup >= 0")
    if not os.path.isfile(os.path.join(args.peer_dir, "gpt_model.py")):
        ap.error(f"no gpt_model.py in {args.peer_dir} (set --peer-dir)")
    return args


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(args, rank):
    """The model (the same weights on every rank), its AdamW and this rank's batches."""
    sys.path.insert(0, args.peer_dir)
    from gpt_model import GPT, config_from_name  # the peer's model, unchanged

    torch.manual_seed(0)
    cfg, T, B = config_from_name(args.config)
    model = GPT(cfg, attn="explicit")
    model.train()
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    g = torch.Generator().manual_seed(1234 + rank)  # each rank its own slice of the data
    data = [torch.randint(0, cfg.vocab_size, (B, T + 1), generator=g) for _ in range(4)]
    return model, groups, data, cfg, T, B


def slowest(seconds, ranks):
    if ranks == 1:
        return seconds
    t = torch.tensor([seconds], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def worker(rank, args, port, queue):
    torch.set_num_threads(args.threads)
    if args.ranks > 1:
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
        dist.init_process_group("gloo", rank=rank, world_size=args.ranks)
    model, groups, data, cfg, T, B = build(args, rank)
    n_params = model.num_params()
    if args.ranks > 1:
        # DDP broadcasts rank 0's weights and buffers at construction; gloo cannot broadcast the
        # attention's bool causal masks, which are the same constant on every rank anyway.
        masks = [name for name, b in model.named_buffers() if b.dtype == torch.bool]
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, masks)
        model = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    opt = torch.optim.AdamW(groups, lr=3e-4)

    warm, times, losses = [], [], []
    for i in range(args.warmup + args.steps):
        d = data[i % len(data)]
        x, y = d[:, :-1], d[:, 1:].contiguous()
        if args.ranks > 1:
            dist.barrier()
        t0 = time.perf_counter()
        _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.item()
        dt = slowest(time.perf_counter() - t0, args.ranks)
        (warm if i < args.warmup else times).append(dt)
        losses.append(value)
        if rank == 0:
            kind = "warmup" if i < args.warmup else "step"
            print(f"[ddp {args.config} x{args.ranks}] {kind} {i if i < args.warmup else i - args.warmup} "
                  f"{dt:.3f}s loss {value:.4f}", file=sys.stderr, flush=True)
    rss = slowest(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, args.ranks)
    # No destroy_process_group: it once left a rank hanging after the other had gone; the
    # all_reduce above already ended the collectives together, and exit closes the connections.
    if rank != 0:
        return
    med = statistics.median(times)
    queue.put({
        "program": "torch", "bench": "ddp", "config": args.config, "tag": args.tag,
        "ranks": args.ranks, "backend": "gloo" if args.ranks > 1 else "none", "threads": args.threads,
        "T": T, "B_per_rank": B, "params": n_params, "bucket_mb": args.bucket_mb,
        "warmup_times_s": [round(t, 4) for t in warm], "step_times_s": [round(t, 4) for t in times],
        "median_step_s": round(med, 4), "tokens_per_s": round(args.ranks * B * T / med, 1),
        "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
        "peak_rss_mib": round(rss, 1), "torch": torch.__version__,
    })


def main():
    args = parse()
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    if args.ranks == 1:
        worker(0, args, 0, queue)
    else:
        mp.spawn(worker, args=(args, free_port(), queue), nprocs=args.ranks, join=True)
    print(json.dumps(queue.get()), flush=True)


if __name__ == "__main__":
    main()
