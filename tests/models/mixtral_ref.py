"""Float64 PyTorch reference for Mixtral (MixtralForCausalLM) as transformers computes it.

Written from the Hugging Face modeling code's math, independent of liandan: RMSNorm, rotate-half
RoPE, grouped-query attention (repeat_kv), and the sparse MoE block (MixtralSparseMoeBlock):
router logits = gate(h); probabilities = softmax(logits) over all experts; the top-k are kept and
divided by their sum; y = sum_k w_k * w2(silu(w1 h) * w3 h). Left padding with an attention mask and
HF position_ids (cumsum(mask) - 1, 1 on padding).

Auxiliary loss, two definitions (for the single sequence, no padding):
  aux_loss     liandan's: the SUM over layers of router_aux_loss_coef * load_balancing(layer) +
               router_z_loss_coef * z(layer), load_balancing(layer) being transformers'
               load_balancing_loss_func on that layer's router logits alone (z: ST-MoE's mean
               logsumexp^2; router_z_loss_coef is liandan's key, transformers ignores it).
  hf_aux_loss  transformers': router_aux_loss_coef * load_balancing_loss_func on the router logits of
               all layers concatenated (one loss, not a sum), what MixtralForCausalLM adds to its loss.

  mixtral_ref.py make DIR   a model folder as transformers' save_pretrained writes it (random
                            weights, F32), DIR/inputs.safetensors (ids; a padded batch + mask) and
                            DIR/reference.safetensors (logits, batch_logits, aux_loss, hf_aux_loss)
Outputs are stored as F32 (liandan reads no F64); they are computed in float64.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_folder  # noqa: E402

T = 11  # length of the single sequence and of the longest padded row
LENGTHS = [11, 7, 4]  # the uneven padded batch: rows are left padded to the longest


def make_config():
    """The fields transformers' MixtralConfig writes (to_dict), small sizes, GQA, untied."""
    return {
        "architectures": ["MixtralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 40,
        "max_position_embeddings": 128,
        "model_type": "mixtral",
        "num_attention_heads": 4,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "num_local_experts": 4,
        "output_router_logits": False,
        "rms_norm_eps": 1e-5,
        "rope_theta": 1e6,
        "router_aux_loss_coef": 0.02,
        "router_jitter_noise": 0.0,
        "router_z_loss_coef": 0.003,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.44.2",
        "use_cache": True,
        "vocab_size": 89,
    }


def random_weights(config, gen):
    """HF parameter names and shapes; weights large enough that logits and routing choices are far
    from ties. Drawn in float64 and rounded to float32, the precision the folder stores."""
    C, I, V = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    H, KV, E = config["num_attention_heads"], config["num_key_value_heads"], config["num_local_experts"]
    D = C // H

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
        w[p + "self_attn.o_proj.weight"] = mat(C, H * D)
        w[p + "post_attention_layernorm.weight"] = norm()
        w[p + "block_sparse_moe.gate.weight"] = mat(E, C, std=0.5)
        for e in range(E):
            q = p + "block_sparse_moe.experts.%d." % e
            w[q + "w1.weight"] = mat(I, C)
            w[q + "w2.weight"] = mat(C, I)
            w[q + "w3.weight"] = mat(I, C)
    w["model.norm.weight"] = norm()
    w["lm_head.weight"] = mat(V, C)
    return w


# --- the model, float64


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope(x, positions, theta):
    """x [B, H, T, D], positions [B, T]."""
    D = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    emb = torch.cat((positions.to(torch.float64)[..., None] * inv_freq,) * 2, dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    return x * cos + rotate_half(x) * sin


def sparse_moe(config, w, p, h):
    """MixtralSparseMoeBlock on h [B, T, C]: (y, router_logits [B*T, E])."""
    B, Tn, C = h.shape
    E, K = config["num_local_experts"], config["num_experts_per_tok"]
    flat = h.reshape(-1, C)
    router_logits = flat @ w[p + "block_sparse_moe.gate.weight"].T
    probs = torch.softmax(router_logits, dim=1)
    weights, selected = torch.topk(probs, K, dim=-1)
    weights = weights / weights.sum(dim=-1, keepdim=True)
    y = torch.zeros_like(flat)
    for e in range(E):
        q = p + "block_sparse_moe.experts.%d." % e
        token, rank = torch.where(selected == e)
        if token.numel() == 0:
            continue
        x = flat[token]
        out = (torch.nn.functional.silu(x @ w[q + "w1.weight"].T) * (x @ w[q + "w3.weight"].T)) @ w[q + "w2.weight"].T
        y.index_add_(0, token, out * weights[token, rank, None])
    return y.reshape(B, Tn, C), router_logits


def load_balancing_loss_func(router_logits, num_experts, top_k):
    """transformers' load_balancing_loss_func without an attention mask (logits [N, E])."""
    routing_weights = torch.softmax(router_logits, dim=-1)
    _, selected_experts = torch.topk(routing_weights, top_k, dim=-1)
    expert_mask = torch.nn.functional.one_hot(selected_experts, num_experts)  # [N, k, E]
    tokens_per_expert = torch.mean(expert_mask.to(torch.float64), dim=0)     # [k, E]
    router_prob_per_expert = torch.mean(routing_weights, dim=0)              # [E]
    return torch.sum(tokens_per_expert * router_prob_per_expert.unsqueeze(0)) * num_experts


def z_loss(router_logits):
    return torch.logsumexp(router_logits, dim=-1).pow(2).mean()


def forward(config, w, ids, mask=None):
    """(logits [B, T, V], [router logits of each layer]) in float64. mask [B, T] or None."""
    w = {k: v.to(torch.float64) for k, v in w.items()}
    B, Tn = ids.shape
    C, H, KV = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    D = C // H
    eps = config["rms_norm_eps"]
    if mask is None:
        mask = torch.ones(B, Tn, dtype=torch.int64)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    i, j = torch.arange(Tn)[:, None], torch.arange(Tn)[None, :]
    allowed = ((j <= i)[None] & (mask[:, None, :] == 1)) | torch.eye(Tn, dtype=torch.bool)[None]
    allowed = allowed[:, None]  # [B, 1, T, T]; a padding query sees itself only

    x = w["model.embed_tokens.weight"][ids]
    router_logits = []
    for layer in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name, heads):
            return (h @ w[p + "self_attn.%s.weight" % name].T).view(B, Tn, heads, D).transpose(1, 2)

        q = rope(proj("q_proj", H), positions, config["rope_theta"])
        k = rope(proj("k_proj", KV), positions, config["rope_theta"]).repeat_interleave(H // KV, dim=1)
        v = proj("v_proj", KV).repeat_interleave(H // KV, dim=1)
        scores = ((q @ k.transpose(-1, -2)) / D ** 0.5).masked_fill(~allowed, float("-inf"))
        att = torch.softmax(scores, dim=-1) @ v
        x = x + att.transpose(1, 2).reshape(B, Tn, H * D) @ w[p + "self_attn.o_proj.weight"].T
        y, logits = sparse_moe(config, w, p, rms_norm(x, w[p + "post_attention_layernorm.weight"], eps))
        router_logits.append(logits)
        x = x + y
    x = rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T, router_logits


def aux_losses(config, router_logits):
    E, K = config["num_local_experts"], config["num_experts_per_tok"]
    a, z = config["router_aux_loss_coef"], config["router_z_loss_coef"]
    per_layer = sum(a * load_balancing_loss_func(l, E, K) + z * z_loss(l) for l in router_logits)
    concatenated = a * load_balancing_loss_func(torch.cat(router_logits, dim=0), E, K)
    return per_layer, concatenated


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "make":
        raise SystemExit(__doc__)
    folder = sys.argv[2]
    gen = torch.Generator().manual_seed(20240)
    config = make_config()
    w = random_weights(config, gen)
    hf_folder.write_folder(folder, config, w)

    V = config["vocab_size"]
    ids = torch.randint(0, V, (1, T), generator=gen)
    longest = max(LENGTHS)
    batch = torch.randint(0, V, (len(LENGTHS), longest), generator=gen)  # padding slots hold junk ids
    mask = torch.zeros(len(LENGTHS), longest, dtype=torch.int64)
    for r, n in enumerate(LENGTHS):
        mask[r, longest - n:] = 1
    hf_folder.write_safetensors(os.path.join(folder, "inputs.safetensors"),
                                {"ids": ids, "batch_ids": batch, "batch_mask": mask})

    logits, router_logits = forward(config, w, ids)
    batch_logits, _ = forward(config, w, batch, mask)
    # The reference's own consistency: a padded row equals that row alone (MoE routes per token).
    for r, n in enumerate(LENGTHS):
        alone, _ = forward(config, w, batch[r:r + 1, longest - n:])
        diff = (alone[0] - batch_logits[r, longest - n:]).abs().max().item()
        assert diff < 1e-9, "padded row %d differs from the row alone by %g" % (r, diff)
    per_layer, concatenated = aux_losses(config, router_logits)
    out = {"logits": logits, "batch_logits": batch_logits, "aux_loss": per_layer.reshape(1),
           "hf_aux_loss": concatenated.reshape(1)}
    hf_folder.write_safetensors(os.path.join(folder, "reference.safetensors"),
                                {k: v.to(torch.float32) for k, v in out.items()})


if __name__ == "__main__":
    main()
