#!/usr/bin/python3
"""PyTorch oracle for liandan's tiny transformer stacks (src/models/tiny_transformer.cpp).

    torch_stacks.py IN.safetensors OUT.safetensors
        IN holds the parameters (Hugging Face names), "ids" and "targets" [B, T] i64, and the
        config as string metadata. OUT gets "logits" [B, T, V], "loss" [] and "grad.<name>" for
        every parameter, all F32, computed in float64; and the same again under "f32." computed in
        float32.
    torch_stacks.py --echo IN OUT
        reads IN and writes its tensors back to OUT, each as "echo.<name>", metadata included
        (the C++ test's check of the file format in both directions).
    torch_stacks.py --self-test
        checks this file's own math against independent formulations (no liandan involved).

The math is written out in plain torch on purpose (no nn.Module, no transformers package). It runs
in float64 (a reference with no rounding error of its own worth speaking of) and in float32 (what a
PyTorch user gets); liandan (float32) must agree with both.
Safetensors is parsed with json + torch.frombuffer: no safetensors package needed.
"""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}
NAMES = {v: k for k, v in DTYPES.items()}
REF = torch.float64


# --- safetensors


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = bytearray(blob[8 + header_len :])  # writable, so frombuffer does not warn
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(data, dtype=dtype, count=(end - begin) // torch.tensor([], dtype=dtype).element_size(),
                                offset=begin) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        raw = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


# --- building blocks


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, theta):
    """Hugging Face LLaMA rotary embedding (rotate-half layout) on x [B, T, H, D], positions arange(T)."""
    T, D = x.shape[1], x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=REF) / D))
    angles = torch.outer(torch.arange(T, dtype=REF), inv_freq)  # [T, D/2]
    emb = torch.cat((angles, angles), dim=-1)[None, :, None, :]  # [1, T, 1, D]
    emb = emb.to(x.dtype)  # angles in float64 (as liandan computes them), applied in x's dtype
    return x * emb.cos() + rotate_half(x) * emb.sin()


def causal_attention(q, k, v):
    """q [B, Hq, T, D], k and v [B, Hkv, T, D]; query head h reads kv head h // (Hq / Hkv) as in HF repeat_kv."""
    groups = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    T = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def split_heads(x, heads):  # [B, T, H*D] -> [B, H, T, D]
    B, T, C = x.shape
    return x.view(B, T, heads, C // heads).transpose(1, 2)


def merge_heads(x):  # [B, H, T, D] -> [B, T, H*D]
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


# --- the two stacks


def gpt2_logits(cfg, p, ids):
    n_layer, n_head, eps = int(cfg["n_layer"]), int(cfg["n_head"]), float(cfg["norm_eps"])
    T = ids.shape[1]
    h = p["transformer.wte.weight"][ids] + p["transformer.wpe.weight"][torch.arange(T)]

    def ln(name, x):
        return F.layer_norm(x, x.shape[-1:], p[name + ".weight"], p[name + ".bias"], eps)

    def conv1d(name, x):  # HF Conv1D: weight [in, out]
        return x @ p[name + ".weight"] + p[name + ".bias"]

    for i in range(n_layer):
        pre = f"transformer.h.{i}."
        q, k, v = conv1d(pre + "attn.c_attn", ln(pre + "ln_1", h)).chunk(3, dim=-1)
        y = causal_attention(split_heads(q, n_head), split_heads(k, n_head), split_heads(v, n_head))
        h = h + conv1d(pre + "attn.c_proj", merge_heads(y))
        h = h + conv1d(pre + "mlp.c_proj", gelu_tanh(conv1d(pre + "mlp.c_fc", ln(pre + "ln_2", h))))
    return ln("transformer.ln_f", h) @ p["transformer.wte.weight"].t()  # tied lm_head


def llama_logits(cfg, p, ids):
    n_layer, n_head, n_kv = int(cfg["n_layer"]), int(cfg["n_head"]), int(cfg["n_kv_head"])
    eps, theta = float(cfg["norm_eps"]), float(cfg["rope_theta"])
    B, T = ids.shape
    h = p["model.embed_tokens.weight"][ids]
    C = h.shape[-1]
    D = C // n_head
    for i in range(n_layer):
        pre = f"model.layers.{i}."
        x = rms_norm(h, p[pre + "input_layernorm.weight"], eps)
        q = rope((x @ p[pre + "self_attn.q_proj.weight"].t()).view(B, T, n_head, D), theta).transpose(1, 2)
        k = rope((x @ p[pre + "self_attn.k_proj.weight"].t()).view(B, T, n_kv, D), theta).transpose(1, 2)
        v = (x @ p[pre + "self_attn.v_proj.weight"].t()).view(B, T, n_kv, D).transpose(1, 2)
        h = h + merge_heads(causal_attention(q, k, v)) @ p[pre + "self_attn.o_proj.weight"].t()
        x = rms_norm(h, p[pre + "post_attention_layernorm.weight"], eps)
        gate = x @ p[pre + "mlp.gate_proj.weight"].t()
        up = x @ p[pre + "mlp.up_proj.weight"].t()
        h = h + (F.silu(gate) * up) @ p[pre + "mlp.down_proj.weight"].t()
    return rms_norm(h, p["model.norm.weight"], eps) @ p["lm_head.weight"].t()


STACKS = {"gpt2": gpt2_logits, "llama": llama_logits}


def forward_backward(cfg, tensors, ids, targets, dtype):
    params = {name: t.to(dtype).requires_grad_(True) for name, t in tensors.items()}
    logits = STACKS[cfg["kind"]](cfg, params, ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    out = {"logits": logits.detach().float(), "loss": loss.detach().float()}
    for name, t in params.items():
        out["grad." + name] = t.grad.float()
    return out


def run(in_path, out_path):
    """The float64 run is the reference; the float32 run ("f32." names) is PyTorch as users run it."""
    tensors, cfg = read_safetensors(in_path)
    ids, targets = tensors.pop("ids"), tensors.pop("targets")
    out = forward_backward(cfg, tensors, ids, targets, REF)
    for name, t in forward_backward(cfg, tensors, ids, targets, torch.float32).items():
        out["f32." + name] = t
    write_safetensors(out_path, out)


# --- self-test: each building block against an independent formulation


def self_test():
    torch.manual_seed(0)
    B, T, H, Hkv, D = 2, 5, 4, 2, 8
    x = torch.randn(B, T, H, D, dtype=REF)

    # rope: rotate pair (i, i + D/2) by angle pos * theta^(-2i/D), one element at a time
    theta, expected = 10000.0, torch.empty_like(x)
    for t in range(T):
        for i in range(D // 2):
            a = t * theta ** (-2.0 * i / D)
            x0, x1 = x[:, t, :, i], x[:, t, :, i + D // 2]
            expected[:, t, :, i] = x0 * math.cos(a) - x1 * math.sin(a)
            expected[:, t, :, i + D // 2] = x0 * math.sin(a) + x1 * math.cos(a)
    assert torch.allclose(rope(x, theta), expected), "rope"

    # GQA causal attention: one query at a time, each head against its kv group
    q, k, v = torch.randn(B, H, T, D, dtype=REF), torch.randn(B, Hkv, T, D, dtype=REF), torch.randn(B, Hkv, T, D, dtype=REF)
    expected = torch.empty_like(q)
    for h in range(H):
        g = h // (H // Hkv)
        for t in range(T):
            w = torch.softmax(q[:, h, t : t + 1] @ k[:, g, : t + 1].transpose(-1, -2) / math.sqrt(D), dim=-1)
            expected[:, h, t] = (w @ v[:, g, : t + 1]).squeeze(1)
    assert torch.allclose(causal_attention(q, k, v), expected), "attention"

    w = torch.randn(D, dtype=REF)
    assert torch.allclose(rms_norm(x, w, 1e-6), x / (x.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt() * w), "rmsnorm"
    assert torch.allclose(gelu_tanh(x), F.gelu(x, approximate="tanh")), "gelu"

    # safetensors round trip, including the metadata and an empty tensor
    import os
    import tempfile

    data = {"a": torch.randn(3, 4), "i": torch.arange(6).view(2, 3), "e": torch.empty(0, 2)}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.safetensors")
        write_safetensors(path, data, {"kind": "gpt2"})
        back, meta = read_safetensors(path)
    assert meta == {"kind": "gpt2"} and all(torch.equal(back[n], t) for n, t in data.items()), "safetensors"
    print("torch_stacks self-test: ok")


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        self_test()
    elif len(sys.argv) == 4 and sys.argv[1] == "--echo":
        tensors, metadata = read_safetensors(sys.argv[2])
        write_safetensors(sys.argv[3], {"echo." + n: t for n, t in tensors.items()}, metadata)
    elif len(sys.argv) == 3:
        run(sys.argv[1], sys.argv[2])
    else:
        sys.exit(__doc__)
