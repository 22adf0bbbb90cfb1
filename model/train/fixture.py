"""Writes the PyTorch fixture the Rust tests compare against (tests/fixtures/):

- tiny.safetensors: a tiny-config DiT with random weights (F32, config in __metadata__);
- tiny-expected.safetensors: inputs x [2,3,16,16] and t [2], the expected eps and x0
  (computed in float64), and a 4-step DDPM run from seed 1234 using the sampler's Philox
  noise (noise.py): the initial noise and the final x.

    python3 model/train/fixture.py tests/fixtures
"""
import sys

import numpy as np
import torch

from dit import DiT, schedule
from export import write_safetensors
from noise import gaussian

TINY = dict(input=16, patch=4, channels=3, dim=32, depth=2, dim_head=16, heads=2, mlp_mult=4,
            time_emb_dim=24, steps=4, schedule_s=3e-5)
SEED = 1234


def main(out):
    torch.manual_seed(0)
    c = TINY
    model = DiT(c)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    sd = {k: v.float() for k, v in model.state_dict().items()}
    meta = {"webdit_config": __import__("json").dumps(c, sort_keys=True)}
    write_safetensors(f"{out}/tiny.safetensors", sd, meta)

    m = model.double().eval()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    t = torch.tensor([3.0, 1.0], dtype=torch.float64)
    with torch.no_grad():
        eps, x0 = m(x, t)

        betas, alphas, abar = schedule(c["steps"], c["schedule_s"])
        n = 2 * 3 * 16 * 16
        init = torch.from_numpy(gaussian(SEED, c["steps"], n)).double().reshape(2, 3, 16, 16)
        xs = init.clone()
        for s in range(c["steps"] - 1, -1, -1):
            e, _ = m(xs, torch.full((2,), float(s), dtype=torch.float64))
            xs = (xs - betas[s] / (1 - abar[s]).sqrt() * e) / alphas[s].sqrt()
            if s > 0:
                xs = xs + betas[s].sqrt() * torch.from_numpy(gaussian(SEED, s, n)).double().reshape(2, 3, 16, 16)
    tensors = {"x": x.float(), "t": t.float(), "eps": eps.float(), "x0": x0.float(),
               "sample_init": init.float(), "sample_final": xs.float()}
    write_safetensors(f"{out}/tiny-expected.safetensors", tensors, {"seed": str(SEED), "sampler": "ddpm"})
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures")
