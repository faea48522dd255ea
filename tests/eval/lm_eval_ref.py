# Perplexity reference for tests/eval/lm_eval_test.cpp: llama2.c's forward pass in float64 numpy,
# written from the checkpoint format (it reads the .bin itself, interleaved-pair RoPE, no Hugging
# Face permutation), and the windowing that `liandan eval --task ppl` documents: each document is
# cut into disjoint windows of W tokens; in a window every token but the first is predicted.
#
#   python3 lm_eval_ref.py BIN IDS_FILE W...   (IDS_FILE: one document a line, token ids separated
#   by spaces, BOS included) -> prints "tokens nll" for each window size W
import struct, sys
try:
    import numpy as np
except ImportError:
    sys.stderr.write("numpy is missing for /usr/bin/python3: install python3-numpy\n")
    sys.exit(3)


def load(path):
    data = open(path, "rb").read()
    dim, hidden, L, H, KVH, vocab, seq = struct.unpack("<7i", data[:28])
    shared, V = vocab > 0, abs(vocab)
    f = np.frombuffer(data, dtype="<f4", offset=28).astype(np.float64)
    hs = dim // H
    kvd = KVH * hs
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        a = f[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return a

    w = dict(emb=take(V, dim), rms_att=take(L, dim), wq=take(L, dim, dim), wk=take(L, kvd, dim),
             wv=take(L, kvd, dim), wo=take(L, dim, dim), rms_ffn=take(L, dim), w1=take(L, hidden, dim),
             w2=take(L, dim, hidden), w3=take(L, hidden, dim), rms_final=take(dim))
    pos[0] += seq * hs  # the two legacy freq_cis arrays
    w["wcls"] = w["emb"] if shared else take(V, dim)
    return dict(L=L, H=H, KVH=KVH, hs=hs), w


def rmsnorm(x, g):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * g


def rope(x):  # [T, heads, hs]: rotate (x[2i], x[2i+1]) by pos * 10000^(-2i/hs)
    T, _, hs = x.shape
    freq = 10000.0 ** (-(2.0 * np.arange(hs // 2)) / hs)
    ang = np.arange(T)[:, None] * freq[None, :]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward(cfg, w, ids):
    T, H, KVH, hs = len(ids), cfg["H"], cfg["KVH"], cfg["hs"]
    x = w["emb"][ids]
    masked = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(cfg["L"]):
        h = rmsnorm(x, w["rms_att"][l])
        q = rope((h @ w["wq"][l].T).reshape(T, H, hs))
        k = rope((h @ w["wk"][l].T).reshape(T, KVH, hs))
        v = (h @ w["wv"][l].T).reshape(T, KVH, hs)
        att = np.zeros((T, H, hs))
        for hh in range(H):
            kv = hh // (H // KVH)
            sc = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hs)
            sc[masked] = -np.inf
            sc = np.exp(sc - sc.max(axis=-1, keepdims=True))
            att[:, hh, :] = (sc / sc.sum(axis=-1, keepdims=True)) @ v[:, kv, :]
        x = x + att.reshape(T, -1) @ w["wo"][l].T
        h = rmsnorm(x, w["rms_ffn"][l])
        a, b = h @ w["w1"][l].T, h @ w["w3"][l].T
        x = x + ((a / (1.0 + np.exp(-a))) * b) @ w["w2"][l].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


cfg, w = load(sys.argv[1])
docs = [[int(t) for t in line.split()] for line in open(sys.argv[2])]
for W in map(int, sys.argv[3:]):
    tokens, nll = 0, 0.0
    for doc in docs:
        for start in range(0, len(doc), W):
            window = doc[start:start + W]
            if len(window) < 2:
                continue
            lp = log_softmax(forward(cfg, w, window))
            for i in range(1, len(window)):
                nll -= lp[i - 1, window[i]]
                tokens += 1
    print(tokens, repr(nll))
