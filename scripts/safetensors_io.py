"""safetensors read/write by hand (json + struct), for the scripts that make qnn's test fixtures.

The Python `safetensors` package is not needed: the format is an 8-byte little-endian header
length, a JSON header padded with spaces to a multiple of 8 bytes, then the raw little-endian
tensor bytes, with data_offsets relative to the start of that data section. This writer uses
Python's json module on purpose, so the fixtures exercise a JSON encoder other than qnn's own.
Only the dtypes qnn reads are handled: torch.float32 (F32) and torch.int64 (I64).
"""
import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.int64: "I64"}
_TORCH = {"F32": torch.float32, "I64": torch.int64}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, torch.Tensor) written in that order; metadata: dict str -> str."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name, t in tensors:
        assert name not in header, f"duplicate tensor name {name}"
        t = t.detach().contiguous().cpu()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def read_safetensors(path):
    """Returns (dict name -> torch.Tensor in file order, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=_TORCH[e["dtype"]]) if end > b \
            else torch.empty(0, dtype=_TORCH[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out, metadata
