"""Samples a trained checkpoint with the original DDPM sampler and with x0 clipping, and
writes uint8 grids as .npy, to compare the samplers on the GPU machine.

    python3 model/train/sample_check.py WEIGHTS_DIR OUT_DIR
"""
import json
import os
import struct
import sys

import numpy as np
import torch

from dit import DiT, schedule

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    meta = h.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for k, v in h.items():
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(raw[base + a:base + b]), dtype=DT[v["dtype"]]).reshape(v["shape"])
    return out, meta


def load(folder):
    idx = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
    sd = {}
    for f in sorted(set(idx["weight_map"].values())):
        t, meta = read_safetensors(os.path.join(folder, f))
        sd.update(t)
    c = json.loads(meta["webdit_config"])
    m = DiT(c)
    m.load_state_dict({k: v.float() for k, v in sd.items()})
    return m, c


@torch.no_grad()
def ddpm(m, c, n, dev, clip, seed=0, eta=1.0, use_x0_head=False, tilde=False):
    g = torch.Generator(device=dev).manual_seed(seed)
    betas, alphas, abar = schedule(c["steps"], c["schedule_s"])
    x = torch.randn(n, 3, 64, 64, device=dev, generator=g)
    for t in range(c["steps"] - 1, -1, -1):
        eps, x0h = m(x, torch.full((n,), float(t), device=dev))
        ab, abp = float(abar[t]), float(abar[t - 1]) if t > 0 else 1.0
        x0 = x0h if use_x0_head else (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        if clip:
            x0 = x0.clamp(-1, 1)
        b, a = float(betas[t]), float(alphas[t])
        if eta == 0.0:
            e = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5
            x = abp ** 0.5 * x0 + (1 - abp) ** 0.5 * e
            continue
        x = abp ** 0.5 * b / (1 - ab) * x0 + a ** 0.5 * (1 - abp) / (1 - ab) * x
        if t > 0:
            var = (1 - abp) / (1 - ab) * b if tilde else b
            x = x + var ** 0.5 * torch.randn(x.shape, device=dev, generator=g)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


if __name__ == "__main__":
    dev = "cuda"
    m, c = load(sys.argv[1])
    m = m.to(dev).eval()
    os.makedirs(sys.argv[2], exist_ok=True)
    runs = {"ddpm": dict(clip=False), "ddpm_clip": dict(clip=True), "ddim_clip": dict(clip=True, eta=0.0)}
    for name, kw in runs.items():
        np.save(os.path.join(sys.argv[2], f"{name}.npy"), ddpm(m, c, 64, dev, **kw))
    print("ok")
