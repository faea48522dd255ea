"""BERT in plain PyTorch float64: the reference bert_test.cpp checks liandan's BERT against.

  bert_ref.py make OUT HIDDEN_ACT TIE SEED
      Random weights for a tiny BERT (norm weights and biases jittered away from 1 and 0), written as
      three Hugging Face folders as transformers saves them:
        OUT/mlm   BertForMaskedLM, with the extras of a real pretraining checkpoint (bert.pooler.*,
                  cls.seq_relationship.*, the position_ids buffer; when tied, the decoder's aliases)
        OUT/cls   BertForSequenceClassification (bert.* with the pooler, classifier.*)
        OUT/base  BertModel (no "bert." prefix)
      the inputs OUT/inputs.safetensors (ids, attention_mask with padding, token_type_ids) and each
      folder's outputs OUT/{mlm,cls,base}_ref.safetensors (via `forward`).
  bert_ref.py forward FOLDER INPUTS OUT
      Reads a folder (ours or liandan's save_pretrained), runs it on INPUTS, writes its outputs:
      logits (BertForMaskedLM [B,T,V], BertForSequenceClassification [B,L]) or last_hidden_state and
      pooled (BertModel). Computed in float64, stored as F32.

The math is written out from transformers' modeling_bert.py (eval mode: no dropout), not imported.
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_folder  # noqa: E402

V, C, LAYERS, HEADS, INTER, MAX_POS, TYPES, LABELS, EPS = 53, 24, 2, 4, 40, 16, 3, 3, 1e-6
B, T = 3, 9


def config(arch, hidden_act, tie):
    return {"architectures": [arch], "model_type": "bert", "vocab_size": V, "hidden_size": C,
            "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTER,
            "max_position_embeddings": MAX_POS, "type_vocab_size": TYPES, "layer_norm_eps": EPS,
            "hidden_act": hidden_act, "tie_word_embeddings": tie, "pad_token_id": 0,
            "id2label": {str(i): "LABEL_%d" % i for i in range(LABELS)},
            "label2id": {"LABEL_%d" % i: i for i in range(LABELS)},
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
            "position_embedding_type": "absolute"}


def random_weights(seed):
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std=0.2):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    def linear(w, prefix, n_out, n_in):
        w[prefix + ".weight"] = normal(n_out, n_in)
        w[prefix + ".bias"] = normal(n_out, std=0.1)

    def norm(w, prefix):
        w[prefix + ".weight"] = 1 + normal(C)
        w[prefix + ".bias"] = normal(C)

    w = {}
    w["embeddings.word_embeddings.weight"] = normal(V, C, std=0.5)
    w["embeddings.position_embeddings.weight"] = normal(MAX_POS, C, std=0.5)
    w["embeddings.token_type_embeddings.weight"] = normal(TYPES, C, std=0.5)
    norm(w, "embeddings.LayerNorm")
    for i in range(LAYERS):
        p = "encoder.layer.%d." % i
        for name in ("query", "key", "value"):
            linear(w, p + "attention.self." + name, C, C)
        linear(w, p + "attention.output.dense", C, C)
        norm(w, p + "attention.output.LayerNorm")
        linear(w, p + "intermediate.dense", INTER, C)
        linear(w, p + "output.dense", C, INTER)
        norm(w, p + "output.LayerNorm")
    linear(w, "pooler.dense", C, C)
    heads = {}
    linear(heads, "cls.predictions.transform.dense", C, C)
    norm(heads, "cls.predictions.transform.LayerNorm")
    heads["cls.predictions.bias"] = normal(V, std=0.1)
    heads["cls.predictions.decoder.weight"] = normal(V, C)
    linear(heads, "cls.seq_relationship", 2, C)
    linear(heads, "classifier", LABELS, C)
    return w, heads


def make(out, hidden_act, tie, seed):
    base, heads = random_weights(seed)
    prefixed = {"bert." + k: v for k, v in base.items()}
    position_ids = torch.arange(MAX_POS, dtype=torch.int64).unsqueeze(0)

    mlm = {k: v for k, v in prefixed.items()}
    mlm["bert.embeddings.position_ids"] = position_ids
    for k in ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
              "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
              "cls.predictions.bias", "cls.seq_relationship.weight", "cls.seq_relationship.bias"):
        mlm[k] = heads[k]
    if tie:  # a pytorch_model.bin-style export keeps both aliases of each tied tensor
        mlm["cls.predictions.decoder.weight"] = base["embeddings.word_embeddings.weight"]
        mlm["cls.predictions.decoder.bias"] = heads["cls.predictions.bias"]
    else:
        mlm["cls.predictions.decoder.weight"] = heads["cls.predictions.decoder.weight"]

    cls = dict(prefixed)
    cls["bert.embeddings.position_ids"] = position_ids
    cls["classifier.weight"] = heads["classifier.weight"]
    cls["classifier.bias"] = heads["classifier.bias"]

    folders = {"mlm": ("BertForMaskedLM", mlm), "cls": ("BertForSequenceClassification", cls),
               "base": ("BertModel", dict(base))}
    for name, (arch, tensors) in folders.items():
        write_folder(os.path.join(out, name), config(arch, hidden_act, tie), tensors)

    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.int64)
    mask[1, T - 3:] = 0  # right padding
    mask[2, :2] = 0      # left padding
    types = torch.randint(0, TYPES, (B, T), generator=g)
    inputs = os.path.join(out, "inputs.safetensors")
    hf_folder.write_safetensors(inputs, {"ids": ids, "attention_mask": mask, "token_type_ids": types})
    for name in folders:
        forward(os.path.join(out, name), inputs, os.path.join(out, name + "_ref.safetensors"))


def write_folder(folder, cfg, tensors):
    """hf_folder.write_folder, but integer buffers (position_ids) keep their dtype."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    hf_folder.write_safetensors(os.path.join(folder, "model.safetensors"),
                                {k: v if not v.is_floating_point() else v.to(torch.float32)
                                 for k, v in tensors.items()})


# --- the model, from a folder


def layer_norm(x, w, prefix, eps):
    return F.layer_norm(x, (x.shape[-1],), w[prefix + ".weight"], w[prefix + ".bias"], eps)


def linear(x, w, prefix):
    return F.linear(x, w[prefix + ".weight"], w[prefix + ".bias"])


def activation(x, hidden_act):
    if hidden_act == "gelu":
        return F.gelu(x)
    assert hidden_act in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"), hidden_act
    return F.gelu(x, approximate="tanh")


def encode(cfg, w, p, ids, mask, types):
    """BertModel: (last_hidden_state, pooled or None); p is the name prefix ("bert." or "")."""
    eps, act = cfg["layer_norm_eps"], cfg.get("hidden_act", "gelu")
    heads = cfg["num_attention_heads"]
    b, t = ids.shape
    h = (w[p + "embeddings.word_embeddings.weight"][ids] + w[p + "embeddings.position_embeddings.weight"][:t]
         + w[p + "embeddings.token_type_embeddings.weight"][types])
    h = layer_norm(h, w, p + "embeddings.LayerNorm", eps)
    # transformers' extended mask: 0 for tokens, the dtype's most negative number for padding keys
    extended = (1.0 - mask.to(h.dtype))[:, None, None, :] * torch.finfo(h.dtype).min
    d = h.shape[-1] // heads
    for i in range(cfg["num_hidden_layers"]):
        lp = p + "encoder.layer.%d." % i

        def split(x):
            return x.view(b, t, heads, d).permute(0, 2, 1, 3)
        q, k, v = (split(linear(h, w, lp + "attention.self." + n)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d) + extended
        ctx = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(b, t, heads * d)
        a = layer_norm(linear(ctx, w, lp + "attention.output.dense") + h, w, lp + "attention.output.LayerNorm", eps)
        inter = activation(linear(a, w, lp + "intermediate.dense"), act)
        h = layer_norm(linear(inter, w, lp + "output.dense") + a, w, lp + "output.LayerNorm", eps)
    pooled = None
    if p + "pooler.dense.weight" in w:
        pooled = torch.tanh(linear(h[:, 0], w, p + "pooler.dense"))
    return h, pooled


def mlm_logits(cfg, w, h):
    """BertForMaskedLM's head (cls.predictions) on BertModel's last hidden state h."""
    t = layer_norm(activation(linear(h, w, "cls.predictions.transform.dense"), cfg.get("hidden_act", "gelu")),
                   w, "cls.predictions.transform.LayerNorm", cfg["layer_norm_eps"])
    tied = cfg.get("tie_word_embeddings", True)
    decoder = w["bert.embeddings.word_embeddings.weight"] if tied else w["cls.predictions.decoder.weight"]
    bias = w["cls.predictions.bias"] if "cls.predictions.bias" in w else w["cls.predictions.decoder.bias"]
    return t @ decoder.T + bias


def forward(folder, inputs_path, out_path):
    cfg, tensors = hf_folder.read_folder(folder)
    w = {k: v.to(torch.float64) for k, v in tensors.items()}
    inputs, _ = hf_folder.read_safetensors(inputs_path)
    ids, mask, types = inputs["ids"], inputs["attention_mask"], inputs["token_type_ids"]
    arch = cfg["architectures"][0]
    p = "bert." if arch != "BertModel" else ""
    h, pooled = encode(cfg, w, p, ids, mask, types)
    if arch == "BertForMaskedLM":
        out = {"logits": mlm_logits(cfg, w, h)}
    elif arch == "BertForSequenceClassification":
        out = {"logits": linear(pooled, w, "classifier")}
    else:
        out = {"last_hidden_state": h, "pooled": pooled}
    hf_folder.write_safetensors(out_path, {k: v.to(torch.float32) for k, v in out.items()})


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5]))
    elif cmd == "forward":
        forward(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: bert_ref.py make OUT HIDDEN_ACT TIE SEED | forward FOLDER INPUTS OUT")


if __name__ == "__main__":
    main()
