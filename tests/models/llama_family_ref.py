"""Float64 PyTorch reference for the LLaMA family (llama, mistral, qwen2) as transformers computes it.

Written from the Hugging Face modeling code's math, independent of liandan: RMSNorm, rotate-half
RoPE with rope_theta, grouped-query attention (repeat_kv), SwiGLU MLP, Qwen2's q/k/v biases and
Mistral's sliding window (key j visible from query i iff 0 <= i - j < sliding_window, on the padded
slot indices), left padding with an attention mask and HF position_ids (cumsum(mask) - 1, 1 on
padding).

  llama_family_ref.py make VARIANT DIR      a model folder as transformers' save_pretrained writes
                                            it (random weights, F32), DIR/inputs.safetensors (ids,
                                            padded batch + mask) and DIR/reference.safetensors
  llama_family_ref.py forward DIR INPUTS OUT the logits of the folder DIR (config.json +
                                            model.safetensors, e.g. one liandan wrote) for INPUTS

VARIANT: llama (GQA, untied), llama_tied, qwen2 (biases, tied), mistral (sliding_window < length).
Logits are stored as F32 (liandan reads no F64); they are computed in float64.
"""
import copy
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_folder  # noqa: E402

T = 11  # length of the single sequence and of the longest padded row
LENGTHS = [11, 7, 4]  # the uneven padded batch: rows are left padded to the longest


def base_config(model_type):
    """The fields transformers' LlamaConfig / MistralConfig / Qwen2Config write (to_dict)."""
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}[model_type]
    c = {
        "architectures": [arch],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 96,
        "max_position_embeddings": 128,
        "model_type": model_type,
        "num_attention_heads": 8,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": 97,
    }
    if model_type == "llama":
        c.update({"attention_bias": False, "mlp_bias": False, "pretraining_tp": 1, "rope_scaling": None,
                  "rms_norm_eps": 1e-5, "rope_theta": 500.0})
    if model_type == "mistral":
        c.update({"sliding_window": 4, "rope_theta": 1e6})
    if model_type == "qwen2":
        # Qwen2Config keeps sliding_window=4096 but only uses it with use_sliding_window=true
        c.update({"use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28,
                  "rope_theta": 1e6, "tie_word_embeddings": True, "bos_token_id": 96, "eos_token_id": 95,
                  "num_key_value_heads": 4})
    return c


def variant_config(variant):
    if variant == "llama":
        return base_config("llama")
    if variant == "llama_tied":
        c = base_config("llama")
        c.update({"tie_word_embeddings": True, "num_key_value_heads": 8})  # plain multi-head attention
        return c
    if variant in ("qwen2", "mistral"):
        return base_config(variant)
    raise SystemExit("unknown variant " + variant)


def random_weights(config, gen):
    """HF parameter names and shapes; weights large enough that the logits are far from ties. Drawn
    in float64 and rounded to float32, the precision the folder stores."""
    C, I, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    H, KV = config["num_attention_heads"], config["num_key_value_heads"]
    D = C // H
    bias = config["model_type"] == "qwen2"

    def mat(*shape, std=0.2):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * std).float()

    def norm():
        return (1.0 + 0.2 * torch.randn(C, generator=gen, dtype=torch.float64)).float()

    w = {"model.embed_tokens.weight": mat(V, C, std=1.0)}
    for i in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm()
        w[p + "self_attn.q_proj.weight"] = mat(H * D, C)
        w[p + "self_attn.k_proj.weight"] = mat(KV * D, C)
        w[p + "self_attn.v_proj.weight"] = mat(KV * D, C)
        if bias:
            w[p + "self_attn.q_proj.bias"] = mat(H * D, std=0.5)
            w[p + "self_attn.k_proj.bias"] = mat(KV * D, std=0.5)
            w[p + "self_attn.v_proj.bias"] = mat(KV * D, std=0.5)
        w[p + "self_attn.o_proj.weight"] = mat(C, H * D)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "mlp.gate_proj.weight"] = mat(I, C)
        w[p + "mlp.up_proj.weight"] = mat(I, C)
        w[p + "mlp.down_proj.weight"] = mat(C, I)
    w["model.norm.weight"] = norm()
    if not config["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(V, C)
    return w


# --- the model, float64


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, positions, theta):
    """x [B, H, T, D], positions [B, T] (HF's LlamaRotaryEmbedding + apply_rotary_pos_emb)."""
    D = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    freqs = positions.to(torch.float64)[..., None] * inv_freq  # [B, T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    return x * cos + rotate_half(x) * sin


def visible(mask, window):
    """[B, T, T] bool: causal, no padding key, and (Mistral) i - j < window on the slot indices."""
    B, Tn = mask.shape
    i = torch.arange(Tn)[:, None]
    j = torch.arange(Tn)[None, :]
    allowed = (j <= i)
    if window:
        allowed = allowed & (i - j < window)
    allowed = allowed[None] & (mask[:, None, :] == 1)
    # A padding query sees nothing; let it see itself so its (ignored) row stays finite.
    return allowed | torch.eye(Tn, dtype=torch.bool)[None]


def sliding_window_of(config):
    if config["model_type"] == "mistral":
        return config.get("sliding_window") or 0
    if config["model_type"] == "qwen2" and config.get("use_sliding_window"):
        raise SystemExit("use_sliding_window is not modelled")
    return 0


def forward(config, w, ids, mask=None, window=None):
    """Logits [B, T, V] in float64. mask [B, T] (1 = token, 0 = left padding) or None."""
    w = {k: v.to(torch.float64) for k, v in w.items()}
    B, Tn = ids.shape
    C, H, KV = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    D = C // H
    eps = config["rms_norm_eps"]
    window = sliding_window_of(config) if window is None else window
    if mask is None:
        mask = torch.ones(B, Tn, dtype=torch.int64)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # HF generate's position_ids
    allowed = visible(mask, window)[:, None]  # [B, 1, T, T]

    x = w["model.embed_tokens.weight"][ids]
    for i in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name, heads):
            y = h @ w[p + "self_attn.%s.weight" % name].T
            if p + "self_attn.%s.bias" % name in w:
                y = y + w[p + "self_attn.%s.bias" % name]
            return y.view(B, Tn, heads, D).transpose(1, 2)

        q = rope(proj("q_proj", H), positions, config["rope_theta"])
        k = rope(proj("k_proj", KV), positions, config["rope_theta"])
        v = proj("v_proj", KV)
        k = k.repeat_interleave(H // KV, dim=1)  # repeat_kv: q head h reads kv head h // (H / KV)
        v = v.repeat_interleave(H // KV, dim=1)
        scores = (q @ k.transpose(-1, -2)) / D ** 0.5
        scores = scores.masked_fill(~allowed, float("-inf"))
        att = torch.softmax(scores, dim=-1) @ v
        x = x + att.transpose(1, 2).reshape(B, Tn, H * D) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if config["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


# --- inputs and commands


def make_inputs(config, gen):
    V = config["vocab_size"]
    ids = torch.randint(0, V, (1, T), generator=gen)
    longest = max(LENGTHS)
    batch = torch.randint(0, V, (len(LENGTHS), longest), generator=gen)  # padding slots hold junk ids
    mask = torch.zeros(len(LENGTHS), longest, dtype=torch.int64)
    for r, n in enumerate(LENGTHS):
        mask[r, longest - n:] = 1
    return {"ids": ids, "batch_ids": batch, "batch_mask": mask}


def logits_for(config, w, inputs):
    out = {"logits": forward(config, w, inputs["ids"])}
    if "batch_ids" in inputs:
        out["batch_logits"] = forward(config, w, inputs["batch_ids"], inputs["batch_mask"])
    return out


def self_check(config, w, inputs, out):
    """The reference's own consistency: each padded row equals that row alone (padding changes
    nothing, the window counts slots and both ends shift together)."""
    mask = inputs["batch_mask"]
    longest = mask.shape[1]
    for r in range(mask.shape[0]):
        n = int(mask[r].sum())
        alone = forward(config, w, inputs["batch_ids"][r:r + 1, longest - n:])
        diff = (alone[0] - out["batch_logits"][r, longest - n:]).abs().max().item()
        assert diff < 1e-9, "padded row %d differs from the row alone by %g" % (r, diff)


def cmd_make(variant, folder):
    gen = torch.Generator().manual_seed(sum(map(ord, variant)) * 7919)
    config = variant_config(variant)
    w = random_weights(config, gen)
    hf_folder.write_folder(folder, config, w)
    inputs = make_inputs(config, gen)
    hf_folder.write_safetensors(os.path.join(folder, "inputs.safetensors"), inputs)
    out = logits_for(config, w, inputs)
    self_check(config, w, inputs, out)
    if sliding_window_of(config):
        plain = copy.deepcopy(config)
        plain["sliding_window"] = None
        out["nowindow_logits"] = forward(plain, w, inputs["ids"])
        out["nowindow_batch_logits"] = forward(plain, w, inputs["batch_ids"], inputs["batch_mask"])
    hf_folder.write_safetensors(os.path.join(folder, "reference.safetensors"),
                                {k: v.to(torch.float32) for k, v in out.items()})


def cmd_forward(folder, inputs_path, out_path):
    config, w = hf_folder.read_folder(folder)
    inputs, _ = hf_folder.read_safetensors(inputs_path)
    out = logits_for(config, w, inputs)
    hf_folder.write_safetensors(out_path, {k: v.to(torch.float32) for k, v in out.items()})


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "make":
        cmd_make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "forward":
        cmd_forward(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
