"""Writes a state_dict as safetensors, optionally sharded with the Hugging Face index
convention, with the model configuration as JSON in `__metadata__` (key `webdit_config`).
Self-contained (no safetensors package needed on the training machine)."""
import json
import os
import struct

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(path, tensors, meta):
    header = {"__metadata__": meta}
    offset, blobs = 0, []
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def export_sharded(state_dict, config, out, dtype=torch.float16, max_shard_bytes=15 << 20):
    """f16 weights in shards of at most `max_shard_bytes`; returns the files written."""
    meta = {"webdit_config": json.dumps(config, sort_keys=True)}
    tensors = {k: v.to(dtype) for k, v in state_dict.items() if k != "pos"}
    shards, cur, size = [], {}, 0
    for k, v in tensors.items():
        nb = v.numel() * v.element_size()
        if cur and size + nb > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = v
        size += nb
    shards.append(cur)
    files, weight_map = [], {}
    for i, sh in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(out, name), sh, meta)
        files.append(name)
        weight_map.update({k: name for k in sh})
    total = sum(v.numel() * v.element_size() for v in tensors.values())
    index = {"metadata": dict(meta, total_size=str(total)), "weight_map": weight_map}
    json.dump(index, open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=1)
    return files + ["model.safetensors.index.json"]
