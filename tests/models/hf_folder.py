"""Hugging Face model folders from plain PyTorch, shared by the models tests' reference scripts.

The test references write a folder as transformers' save_pretrained would (config.json +
model.safetensors, F32) and read back tensors liandan wrote. safetensors is parsed with json +
torch.frombuffer: Debian's python3-torch is all that is needed (no safetensors or transformers
package). Import with sys.path.insert(0, os.path.dirname(__file__)).
"""
import json
import os
import struct

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
          "BF16": torch.bfloat16, "F16": torch.float16}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    """{name: tensor} and the metadata dict."""
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
        size = torch.tensor([], dtype=dtype).element_size()
        flat = (torch.frombuffer(data, dtype=dtype, count=(end - begin) // size, offset=begin)
                if end > begin else torch.empty(0, dtype=dtype))
        tensors[name] = flat.reshape(info["shape"]).clone()
    return tensors, metadata


def write_safetensors(path, tensors, metadata=None):
    header, chunks, offset = {}, [], 0
    header["__metadata__"] = {k: str(v) for k, v in (metadata or {"format": "pt"}).items()}
    for name, t in tensors.items():
        t = t.detach().contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
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


def write_folder(folder, config, tensors):
    """config.json + model.safetensors (F32), as save_pretrained writes them."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {k: v.to(torch.float32) for k, v in tensors.items()})


def read_folder(folder):
    """(config dict, {name: tensor}) of a single-file folder."""
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    tensors, _ = read_safetensors(os.path.join(folder, "model.safetensors"))
    return config, tensors
