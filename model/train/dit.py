"""The DiT of Web DiT in PyTorch: the reference model for training and for test fixtures.

Exactly the semantics of shared/reference/dit-model.md (the original project's model), with
the same state_dict names, so its checkpoints load in the Rust runtime unchanged.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {
    "favicon-s": dict(input=64, patch=8, channels=3, dim=512, depth=4, dim_head=128, heads=1,
                      mlp_mult=4, time_emb_dim=128, steps=32, schedule_s=3e-5),
    # A candidate for a sharper default: 4×4 patches (256 tokens) at 1.2× favicon-s's FLOPs
    # per step (narrower), for quality.py to judge.
    "favicon-s4": dict(input=64, patch=4, channels=3, dim=256, depth=4, dim_head=64, heads=2,
                       mlp_mult=4, time_emb_dim=128, steps=32, schedule_s=3e-5),
    "favicon-b": dict(input=64, patch=4, channels=3, dim=768, depth=12, dim_head=192, heads=1,
                      mlp_mult=4, time_emb_dim=768, steps=32, schedule_s=3e-5),
}


def sinus(v, d):
    """[..] -> [.., d]: all sines first, then cosines, f_i = exp(-i ln(10000) / (half - 1))."""
    half = d // 2
    dt = v.dtype if v.dtype.is_floating_point else torch.float32
    f = torch.exp(torch.arange(half, device=v.device, dtype=dt) * -(math.log(10000) / (half - 1)))
    e = v.to(dt)[..., None] * f
    return torch.cat([e.sin(), e.cos()], -1)


def pos_embedding(grid, dim):
    gy, gx = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sinus(gy.flatten(), dim // 2), sinus(gx.flatten(), dim // 2)], -1)


class AdaLN(nn.Module):
    """Unbiased std, eps added to the std (not inside the sqrt), then (1 + scale) and + shift."""

    def __init__(self, dim, temb):
        super().__init__()
        self.scale_proj = nn.Linear(temb, dim, bias=False)
        self.shift_proj = nn.Linear(temb, dim, bias=False)

    def forward(self, x, te):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True) + 1e-5
        return (x - mean) / std * (1 + self.scale_proj(te)[:, None]) + self.shift_proj(te)[:, None]


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, dropout=0.0):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = (f(x).view(b, n, self.heads, self.dim_head).transpose(1, 2) for f in (self.to_q, self.to_k, self.to_v))
        a = F.scaled_dot_product_attention(q, k, v, scale=self.dim_head ** -0.5)
        a = F.dropout(a.transpose(1, 2).reshape(b, n, -1), self.dropout, self.training)
        return self.to_out(a)


class FeedForward(nn.Module):
    def __init__(self, dim, mult, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult, bias=False), nn.SiLU(), nn.Linear(dim * mult, dim, bias=False))
        self.dropout = dropout

    def forward(self, x):
        # Dropout (training only) on the hidden units; outside `net` so the state_dict names
        # stay the original's.
        return self.net[2](F.dropout(self.net[1](self.net[0](x)), self.dropout, self.training))


class Block(nn.Module):
    def __init__(self, c, dropout=0.0):
        super().__init__()
        self.norm1 = AdaLN(c["dim"], c["time_emb_dim"])
        self.attn = Attention(c["dim"], c["heads"], c["dim_head"], dropout)
        self.norm2 = AdaLN(c["dim"], c["time_emb_dim"])
        self.ff = FeedForward(c["dim"], c["mlp_mult"], dropout)

    def forward(self, x, te):
        x = x + self.attn(self.norm1(x, te))
        return x + self.ff(self.norm2(x, te))


class TimeSinus(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        return sinus(t, self.dim)


class DiT(nn.Module):
    """`dropout` acts in training mode only (attention's output and the MLP's hidden units);
    in eval mode, and in every checkpoint, the model is exactly the reference's."""

    def __init__(self, c, dropout=0.0):
        super().__init__()
        self.c = dict(c)
        p, ch, dim = c["patch"], c["channels"], c["dim"]
        pd = ch * p * p
        self.patch_embed = nn.Linear(pd, dim, bias=False)
        self.register_buffer("pos", pos_embedding(c["input"] // p, dim), persistent=False)
        self.time_mlp = nn.Sequential(TimeSinus(dim // 2), nn.Linear(dim // 2, c["time_emb_dim"], bias=False),
                                      nn.SiLU(), nn.Linear(c["time_emb_dim"], c["time_emb_dim"], bias=False))
        self.blocks = nn.ModuleList(Block(c, dropout) for _ in range(c["depth"]))
        self.final_norm = AdaLN(dim, c["time_emb_dim"])
        self.to_pixels = nn.Linear(dim, pd, bias=False)
        self.proj_fin = nn.Linear(dim, pd, bias=True)

    def patchify(self, x):
        b, ch, h, w = x.shape
        p = self.c["patch"]
        return x.reshape(b, ch, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, ch * p * p)

    def unpatchify(self, x):
        c, p = self.c, self.c["patch"]
        g = c["input"] // p
        return x.reshape(-1, g, g, c["channels"], p, p).permute(0, 3, 1, 4, 2, 5).reshape(-1, c["channels"], c["input"], c["input"])

    def forward(self, x, t):
        h = self.patch_embed(self.patchify(x)) + self.pos
        te = self.time_mlp(t)
        for blk in self.blocks:
            h = blk(h, te)
        latent = self.final_norm(h, te)
        return self.unpatchify(self.to_pixels(latent)), self.unpatchify(self.proj_fin(latent))


def schedule(T, s):
    """DDPM cosine schedule (float64): betas, alphas, alpha-bars."""
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2
    f = f / f[0]
    betas = (1 - f[1:] / f[:-1]).clamp(0, 0.999)
    alphas = 1 - betas
    return betas, alphas, torch.cumprod(alphas, 0)


def metadata(c):
    """The checkpoint's `__metadata__`: the configuration as JSON."""
    return {"webdit_config": json.dumps(c, sort_keys=True)}
