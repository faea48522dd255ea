"""GPT-2 (GPT2LMHeadModel) in plain PyTorch, float64: the reference for tests/models/gpt2_test.cpp.

  gpt2_ref.py make VARIANT FOLDER REF   random weights for VARIANT written as a Hugging Face folder
                                        (config.json + model.safetensors), and REF (safetensors) with
                                        ids, attention_mask, position_ids and the logits for them
  gpt2_ref.py logits FOLDER REF         the same REF for a folder someone else wrote (liandan's
                                        save_pretrained)

The ids are a batch of two rows: row 0 all real tokens, row 1 left-padded (attention_mask 0 on its
first PAD slots) as transformers' generate() pads prompts. position_ids follow transformers:
cumsum(mask) - 1, and 1 on padding. Logits at padding positions are meaningless and not compared.
Weights are rounded to float32 (what the folder stores) before the float64 forward.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_folder  # noqa: E402

BATCH, LENGTH, PAD = 2, 10, 3

BASE = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 50, "n_positions": 16,
        "n_embd": 32, "n_layer": 2, "n_head": 4, "n_inner": None, "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5, "bos_token_id": 49, "eos_token_id": 49}

# variant: (config changes, stored without the "transformer." prefix and with attention buffers)
VARIANTS = {
    "base": ({}, False),
    "n_inner": ({"n_inner": 40, "n_layer": 3, "n_head": 2, "activation_function": "gelu_pytorch_tanh"}, False),
    "gelu": ({"activation_function": "gelu", "layer_norm_epsilon": 1e-6}, False),
    "untied": ({"tie_word_embeddings": False, "vocab_size": 37}, False),
    "hub": ({"activation_function": "gelu_new", "n_layer": 3}, True),
}


def random_weights(cfg, gen):
    C, V, P = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    inner = cfg.get("n_inner") or 4 * C

    def normal(*shape, std=0.2, mean=0.0):
        return mean + std * torch.randn(*shape, generator=gen, dtype=torch.float64)

    w = {"transformer.wte.weight": normal(V, C, std=0.3), "transformer.wpe.weight": normal(P, C, std=0.3)}

    def layernorm(name):
        w[name + ".weight"] = normal(C, mean=1.0)
        w[name + ".bias"] = normal(C)

    def conv1d(name, n_in, n_out):  # HF Conv1D: weight [in, out]
        w[name + ".weight"] = normal(n_in, n_out)
        w[name + ".bias"] = normal(n_out)

    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        layernorm(p + "ln_1")
        conv1d(p + "attn.c_attn", C, 3 * C)
        conv1d(p + "attn.c_proj", C, C)
        layernorm(p + "ln_2")
        conv1d(p + "mlp.c_fc", C, inner)
        conv1d(p + "mlp.c_proj", inner, C)
    layernorm("transformer.ln_f")
    if not cfg.get("tie_word_embeddings", True):
        w["lm_head.weight"] = normal(V, C, std=0.3)
    # what the folder holds: float32
    return {k: v.to(torch.float32).to(torch.float64) for k, v in w.items()}


def as_hub_checkpoint(cfg, w):
    """The layout of the Hub's gpt2 model.safetensors: saved from GPT2Model (no "transformer."
    prefix), with each layer's causal-mask buffer attn.bias and attn.masked_bias."""
    P = cfg["n_positions"]
    out = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in w.items()}
    for i in range(cfg["n_layer"]):
        out[f"h.{i}.attn.bias"] = torch.tril(torch.ones(P, P, dtype=torch.float64)).view(1, 1, P, P)
        out[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float64)
    return out


def normalized(w, dtype=torch.float64):
    """Reads a folder's tensors as GPT2LMHeadModel names them (what transformers does on load)."""
    out = {}
    for k, v in w.items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue
        name = k if k.startswith("transformer.") or k.startswith("lm_head.") else "transformer." + k
        out[name] = v.to(dtype)
    return out


def gelu(x, act):
    if act == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    assert act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"), act
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def layernorm(x, w, name, eps):
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w[name + ".weight"] + w[name + ".bias"]


def conv1d(x, w, name):
    return x @ w[name + ".weight"] + w[name + ".bias"]


def position_ids(mask):
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


def forward(cfg, w, ids, mask):
    B, T = ids.shape
    C, H, eps = cfg["n_embd"], cfg["n_head"], cfg.get("layer_norm_epsilon", 1e-5)
    D = C // H
    act = cfg.get("activation_function", "gelu_new")
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][position_ids(mask)]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    allowed = causal[None, None, :, :] & (mask[:, None, None, :] != 0)  # [B, 1, T, T]
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        h = layernorm(x, w, p + "ln_1", eps)
        q, k, v = conv1d(h, w, p + "attn.c_attn").split(C, dim=-1)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        y = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + conv1d(y, w, p + "attn.c_proj")
        h = layernorm(x, w, p + "ln_2", eps)
        x = x + conv1d(gelu(conv1d(h, w, p + "mlp.c_fc"), act), w, p + "mlp.c_proj")
    x = layernorm(x, w, "transformer.ln_f", eps)
    head = w["lm_head.weight"] if "lm_head.weight" in w else w["transformer.wte.weight"]
    return x @ head.T


def inputs(cfg, seed):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg["vocab_size"], (BATCH, LENGTH), generator=gen, dtype=torch.int64)
    mask = torch.ones(BATCH, LENGTH, dtype=torch.int64)
    mask[1, :PAD] = 0
    ids[1, :PAD] = 0  # a pad token; masked out
    return ids, mask


def write_reference(path, cfg, w, seed):
    ids, mask = inputs(cfg, seed)
    logits = forward(cfg, w, ids, mask)
    hf_folder.write_safetensors(path, {"ids": ids, "attention_mask": mask, "position_ids": position_ids(mask),
                                       "logits": logits.to(torch.float32)})


def main(argv):
    if len(argv) == 4 and argv[0] == "make":
        variant, folder, ref = argv[1:]
        changes, hub = VARIANTS[variant]
        cfg = dict(BASE, **changes)
        w = random_weights(cfg, torch.Generator().manual_seed(len(variant) * 1000 + 7))
        hf_folder.write_folder(folder, cfg, as_hub_checkpoint(cfg, w) if hub else w)
        write_reference(ref, cfg, w, seed=11)
        return 0
    if len(argv) == 3 and argv[0] == "logits":
        folder, ref = argv[1:]
        cfg, tensors = hf_folder.read_folder(folder)
        assert cfg["model_type"] == "gpt2", cfg["model_type"]
        write_reference(ref, cfg, normalized(tensors), seed=13)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
