#!/usr/bin/python3
"""The PyTorch twin of liandan_bench_ops: the same cases, shapes, warm-up and repetitions, one JSON
line per (case, shape) on stdout, progress on stderr. See bench/README.md.

PyTorch 1.13 CPU at its best (run it as ops_vs_torch.sh does, with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset and OMP_WAIT_POLICY=PASSIVE):
  gemm          F.linear(x, W) forward; dX = dY @ W and dW = dY^T @ X (what linear's backward runs)
  attention     the "explicit" path of /work/shared/bench/gpt_model.py: (q @ k^T) * scale,
                masked_fill(~causal_mask, -inf), softmax, @ v; forward + backward
  layernorm     F.layer_norm with weight and bias; forward + backward
  cross_entropy F.cross_entropy (mean); forward + backward

Usage: /usr/bin/python3 ops_bench_torch.py <gemm|attention|layernorm|cross_entropy|all>
           [--threads 2] [--reps 10] [--warmup 3] [--only SUBSTRING]
"""
import argparse
import ctypes
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

CASES = ["gemm", "attention", "layernorm", "cross_entropy"]

GEMM_SHAPES = [(2048, 256, 768), (2048, 256, 256), (2048, 256, 1024), (2048, 1024, 256), (2048, 256, 8192),
               (1024, 768, 2304), (1024, 768, 768), (1024, 768, 3072), (1024, 3072, 768), (1024, 768, 50257)]
ATTENTION_SHAPES = [(8, 4, 256, 64), (8, 6, 256, 64), (1, 12, 1024, 64)]
LAYERNORM_SHAPES = [(2048, 256), (2048, 384), (1024, 768), (8192, 768)]
CROSS_ENTROPY_SHAPES = [(2048, 8192), (1024, 50257)]


def blas_library():
    """Which BLAS shared objects are mapped into this process (as bench_train.py reports them)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and ("blas" in parts[-1] or "mkl" in parts[-1]):
                    libs.add(parts[-1])
    except OSError:
        pass
    return sorted(libs)


def openblas_call(name, restype):
    """Calls an OpenBLAS query (e.g. openblas_get_corename) in the copy torch loaded, or None if not OpenBLAS."""
    for path in blas_library():
        if "openblas" not in path:
            continue
        try:
            fn = getattr(ctypes.CDLL(path), name)  # already loaded: same handle, no second copy
        except (OSError, AttributeError):
            continue
        fn.restype = restype
        return fn()
    return None


def openblas_core():
    """OpenBLAS kernel set in use ('Cooperlake' on this CPU when the peer runs at its best), or None."""
    core = openblas_call("openblas_get_corename", ctypes.c_char_p)
    return core.decode() if core is not None else None


def time_it(args, body, reset):
    """body runs inside the timer, reset after it (drops outputs and grads). Returns ms per rep."""
    for _ in range(args.warmup):
        body()
        reset()
    ms = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        body()
        t1 = time.perf_counter()
        reset()
        ms.append((t1 - t0) * 1e3)
    return ms


class Runner:
    def __init__(self, args):
        self.args = args
        self.failures = 0
        self.env = {"threads": torch.get_num_threads(), "reps": args.reps, "warmup": args.warmup,
                    "torch": torch.__version__, "openblas_core": openblas_core(),
                    "openblas_threads": openblas_call("openblas_get_num_threads", ctypes.c_int)}

    def selected(self, shape):
        return self.args.only in shape

    def run_shape(self, case, shape, setup, flops=0.0):
        """setup() returns (body, reset). Prints the JSON line, or an 'error' line if anything throws."""
        if not self.selected(shape):
            return
        line = {"impl": "torch", "case": case, "shape": shape}
        print(f"[torch] {case} {shape} ...", end="", file=sys.stderr, flush=True)
        try:
            body, reset = setup()
            ms = time_it(self.args, body, reset)
            med = statistics.median(ms)
            line.update(median_ms=round(med, 3), min_ms=round(min(ms), 3), max_ms=round(max(ms), 3))
            if flops:
                line.update(gflops=round(flops / (med * 1e6), 1), flops=flops)
            print(f" median {med:.3f} ms", file=sys.stderr, flush=True)
        except Exception as e:  # report and go on with the next shape, as the liandan side does
            line["error"] = f"{type(e).__name__}: {e}"
            self.failures += 1
            print(f" FAILED: {line['error']}", file=sys.stderr, flush=True)
        line.update(self.env)
        print(json.dumps(line), flush=True)


def forward_backward(forward, leaves):
    """out = forward(); out.backward(upstream), upstream random and prepared outside the timer."""
    with torch.no_grad():
        upstream = torch.randn(forward().shape)
    state = {}

    def body():
        state["out"] = forward()
        state["out"].backward(upstream)

    def reset():
        state.clear()
        for t in leaves:  # a missing gradient would mean the timed backward skipped the op
            if t.grad is None:
                raise RuntimeError(f"the backward gave an input of shape {list(t.shape)} no gradient")
            t.grad = None

    return body, reset


def gemm_case(r):
    for n, fin, fout in GEMM_SHAPES:
        base = f"N={n} {fin}->{fout}"
        flops = 2.0 * n * fin * fout
        if not any(r.selected(f"{base} {p}") for p in ("fwd", "dX", "dW")):
            continue
        x, w, dy = torch.randn(n, fin), torch.randn(fout, fin), torch.randn(n, fout)
        state = {}
        reset = state.clear

        def fwd():
            state["y"] = F.linear(x, w)  # Y = X W^T

        def dx():
            state["y"] = torch.matmul(dy, w)  # dX = dY W

        def dw():
            state["y"] = torch.matmul(dy.t(), x)  # dW = dY^T X

        with torch.no_grad():
            r.run_shape("gemm", base + " fwd", lambda: (fwd, reset), flops)
            r.run_shape("gemm", base + " dX", lambda: (dx, reset), flops)
            r.run_shape("gemm", base + " dW", lambda: (dw, reset), flops)
        del x, w, dy


def explicit_attention(q, k, v, mask, scale):
    """gpt_model.py's 'explicit' path (torch 1.13 has no fused attention on the CPU)."""
    att = (q @ k.transpose(-2, -1)) * scale
    att = att.masked_fill(~mask, float("-inf"))
    att = F.softmax(att, dim=-1)
    return att @ v


def attention_case(r):
    for b, h, t, d in ATTENTION_SHAPES:
        def setup():
            q, k, v = (torch.randn(b, h, t, d, requires_grad=True) for _ in range(3))
            mask = torch.tril(torch.ones(t, t, dtype=torch.bool)).view(1, 1, t, t)  # a module buffer in gpt_model
            scale = 1.0 / math.sqrt(d)
            return forward_backward(lambda: explicit_attention(q, k, v, mask, scale), [q, k, v])

        r.run_shape("attention", f"B={b} H={h} T={t} D={d}", setup)


def layernorm_case(r):
    for rows, cols in LAYERNORM_SHAPES:
        def setup():
            x = torch.randn(rows, cols, requires_grad=True)
            w = torch.randn(cols, requires_grad=True)
            bias = torch.randn(cols, requires_grad=True)
            return forward_backward(lambda: F.layer_norm(x, (cols,), w, bias, 1e-5), [x, w, bias])

        r.run_shape("layernorm", f"[{rows},{cols}]", setup)


def cross_entropy_case(r):
    for rows, vocab in CROSS_ENTROPY_SHAPES:
        def setup():
            logits = torch.randn(rows, vocab, requires_grad=True)
            targets = torch.randint(0, vocab, (rows,), generator=torch.Generator().manual_seed(42))
            return forward_backward(lambda: F.cross_entropy(logits, targets), [logits])

        r.run_shape("cross_entropy", f"[{rows},{vocab}]", setup)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=CASES + ["all"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", default="", help="only the shapes whose label contains this, e.g. 50257 or dW")
    args = ap.parse_args()
    if args.reps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--reps and --threads must be >= 1, --warmup >= 0")

    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    core = openblas_core()
    if core is not None and core != "Cooperlake":
        print(f"[torch] warning: OpenBLAS uses its {core} kernels, not Cooperlake: unset OPENBLAS_CORETYPE "
              f"(now {os.environ.get('OPENBLAS_CORETYPE')}) and OPENBLAS_L2_SIZE for the peer's command",
              file=sys.stderr, flush=True)
    r = Runner(args)
    cases = {"gemm": gemm_case, "attention": attention_case, "layernorm": layernorm_case,
             "cross_entropy": cross_entropy_case}
    for name in (CASES if args.case == "all" else [args.case]):
        cases[name](r)
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
