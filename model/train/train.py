"""Trains a DiT preset on the emoji set (prepare_data.py) and exports its EMA weights.

Single GPU:   python3 model/train/train.py --data .data/emoji64.npz --out out/ --minutes 8
Several GPUs: torchrun --nproc_per_node=2 model/train/train.py ...   (DistributedDataParallel)
Resume:       add --ckpt DIR to save the full state there every few minutes; a run with the
              same --ckpt continues from it (model, EMA, optimizer, step, clock, RNG).

A loss that blows up and stays up (finite, so training would go on) rolls the model, EMA and
optimizer back to a snapshot from before it and halves the learning rate (guard.py).

The run stops on a wall-clock budget (--minutes) and writes, into --out: the EMA weights as
f16 safetensors shards with `model.safetensors.index.json` (config in `__metadata__`), the
loss log (loss.json) and 64 PyTorch samples (samples.npy) for a first look.
"""
import argparse
import copy
import json
import math
import os
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from dit import DiT, PRESETS, schedule
from export import export_sharded
from guard import SpikeGuard


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".data/emoji64.npz")
    ap.add_argument("--out", default="out")
    ap.add_argument("--preset", default="favicon-s", choices=sorted(PRESETS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=INT",
                    help="override one of the preset's integers (e.g. heads=2, depth=5, mlp_mult=3)")
    ap.add_argument("--minutes", type=float, default=8.0)
    # The shipped recipe (docs/quality.md): compiled, the step is bound by launches up to
    # batch 1,024 on an H200, so the large batch is free; lr 3e-3 diverged there.
    ap.add_argument("--batch", type=int, default=1024, help="per GPU")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--ema", default="0.9999",
                    help="EMA decay; a comma-separated list keeps several, the first exported to --out, "
                         "each other to --out/ema<decay>/")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="dropout on attention's output and the MLP's hidden units (training only)")
    ap.add_argument("--shift", type=int, default=0,
                    help="augment by random shifts of up to this many pixels (white fill)")
    ap.add_argument("--snapshots", default="",
                    help="comma-separated fractions of --minutes at which the EMA weights are also "
                         "exported, to --out/at<percent>/")
    ap.add_argument("--eps-weight-cap", type=float, default=20.0,
                    help="weight the eps loss at step t by min(1/abar_t, cap), normalized to mean 1 (0: uniform)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-split", action="store_true",
                    help="train on quality.py's training split only (the held-out emoji unseen)")
    ap.add_argument("--ckpt", default=None, help="folder for the resumable state")
    ap.add_argument("--ckpt-minutes", type=float, default=2.0)
    ap.add_argument("--no-compile", action="store_true",
                    help="run the model eagerly (default: torch.compile, eager if compiling fails)")
    return ap.parse_args()


def main():
    a = parse()
    ddp = "LOCAL_RANK" in os.environ
    if ddp:
        dist.init_process_group("nccl")
        rank, world = dist.get_rank(), dist.get_world_size()
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(dev)
    else:
        rank, world, dev = 0, 1, torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(a.seed + rank)

    c = dict(PRESETS[a.preset])
    for kv in a.set:
        key, _, value = kv.partition("=")
        if key not in c or not isinstance(c[key], int):
            raise SystemExit(f"error: --set {kv}: {key!r} is not an integer of the preset ({sorted(c)})")
        c[key] = int(value)
    T = c["steps"]
    _, _, abar = schedule(T, c["schedule_s"])
    sab = abar.sqrt().float().to(dev)
    s1ab = (1 - abar).sqrt().float().to(dev)
    # The sampler divides by sqrt(abar_t) (2.4e-6 at t = T-1 for the cosine schedule), so an
    # eps error there becomes a huge x0 error: weight the eps loss towards high t.
    w = (1 / abar).clamp(max=a.eps_weight_cap) if a.eps_weight_cap > 0 else torch.ones_like(abar)
    eps_w = (w / w.mean()).float().to(dev)

    npz = np.load(a.data)
    images = npz["images"]
    if a.train_split:
        # Leave quality.py's held-out emoji unseen, so its Fréchet distance measures
        # generalization, not recall of the training images.
        from quality import held_out
        images = images[~held_out(npz["emoji"])]
    data = torch.from_numpy(images).to(dev).permute(0, 3, 1, 2).contiguous()
    n_data = data.shape[0]

    model = DiT(c, a.dropout).to(dev)
    decays = [float(d) for d in a.ema.split(",")]
    emas = [DiT(c).to(dev).eval().requires_grad_(False) for _ in decays]
    for e in emas:
        e.load_state_dict(model.state_dict())
    snapshots = sorted(float(f) for f in a.snapshots.split(",") if f)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.99), weight_decay=0.01, fused=True)
    step, elapsed0, losses = 0, 0.0, []
    ck = os.path.join(a.ckpt, "state.pt") if a.ckpt else None
    if ck and os.path.exists(ck):
        st = torch.load(ck, map_location=dev, weights_only=False)
        model.load_state_dict(st["model"])
        for e, sd in zip(emas, st.get("emas", [st.get("ema")])):
            e.load_state_dict(sd)
        opt.load_state_dict(st["opt"])
        step, elapsed0, losses = st["step"], st["elapsed"], st["losses"]
        torch.cuda.set_rng_state(st["cuda_rng"][rank % len(st["cuda_rng"])].cpu())
        snapshots = [f for f in snapshots if f * a.minutes * 60 > elapsed0]  # exported before
        if rank == 0:
            print(f"resumed at step {step}, {elapsed0 / 60:.1f} min in", flush=True)
    eager = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index]) if ddp else model
    # A 11 M-parameter model at batch 256 is bound by kernel launches in eager mode: compiled,
    # the same minutes train about twice the steps.
    net = eager if a.no_compile else torch.compile(eager)
    if rank == 0:
        print(f"{a.preset}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, "
              f"{n_data} images, {world} GPU(s), batch {a.batch}x{world}", flush=True)

    budget = a.minutes * 60
    step0 = step
    start = time.time() - elapsed0
    last_ck = time.time()
    stop_every = 20  # steps between clock checks (each one waits for the GPU under DDP)
    guard, lr_scale, snaps = SpikeGuard(), 1.0, []
    while True:
        elapsed = time.time() - start
        if step % stop_every == 0:
            stop = torch.tensor([elapsed >= budget], device=dev)
            if ddp:
                dist.broadcast(stop, 0)
            if stop.item():
                break
        frac = min(elapsed / budget, 1.0)
        lr = lr_scale * a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr

        idx = torch.randint(0, n_data, (a.batch,), device=dev)
        x0 = data[idx].float() / 127.5 - 1
        flip = torch.rand(a.batch, device=dev) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        if a.shift:
            x0 = shift(x0, a.shift)
        t = torch.randint(0, T, (a.batch,), device=dev)
        noise = torch.randn_like(x0)
        xt = sab[t][:, None, None, None] * x0 + s1ab[t][:, None, None, None] * noise
        def loss_of(net):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                eps, x0h = net(xt, t.float())
            eps_mse = (eps.float() - noise).pow(2).mean((1, 2, 3))
            return (eps_w[t] * eps_mse).mean() + 0.6 * F.mse_loss(x0h.float(), x0)

        opt.zero_grad(set_to_none=True)
        try:
            loss = loss_of(net)
            loss.backward()
        except Exception as e:  # noqa: BLE001 - the compiler failing on the first step: train eagerly
            if net is eager or step != step0:
                raise
            if rank == 0:
                print(f"torch.compile failed ({type(e).__name__}: {e}); training eagerly", flush=True)
            net = eager
            opt.zero_grad(set_to_none=True)
            loss = loss_of(net)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for e, decay in zip(emas, decays):
                d = min(decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(list(e.parameters()), list(model.parameters()), 1 - d)
        step += 1
        if snapshots and step % stop_every == 0 and elapsed >= snapshots[0] * budget:
            if rank == 0:
                export(emas, decays, c, a, step, world, os.path.join(a.out, f"at{round(snapshots[0] * 100)}"))
            snapshots.pop(0)
        if step % 50 == 0:
            losses.append((step, time.time() - start, loss.item()))
            if not math.isfinite(losses[-1][2]):
                # Diverged (e.g. too high a learning rate): nothing is exported.
                raise SystemExit(f"error: the loss is {losses[-1][2]} at step {step}; "
                                 f"lower --lr (now {a.lr})")
            if rank == 0 and step % 1000 == 0:
                print(f"step {step} loss {losses[-1][2]:.4f} lr {lr:.2e} {(time.time() - start) / 60:.1f} min", flush=True)
            # Rank 0's loss decides for all ranks (they hold the same weights).
            logged = losses[-1][2]
            spiked = guard.observe(logged)
            said = torch.tensor([int(spiked), int(guard.calm())], device=dev)
            if ddp:
                dist.broadcast(said, 0)
            spike, calm = said.tolist()
            if spike and snaps:
                back = snaps[0]
                model.load_state_dict(back["model"])
                for e, sd in zip(emas, back["emas"]):
                    e.load_state_dict(sd)
                opt.load_state_dict(copy.deepcopy(back["opt"]))  # it may keep the tensors
                lr_scale /= 2
                snaps = [back]
                if rank == 0:
                    print(f"step {step}: the loss spiked ({logged:.3f}); back to step "
                          f"{back['step']}, learning rate x{lr_scale}", flush=True)
            elif step % 1000 == 0 and calm:
                # Two snapshots: the older one predates anything the guard has not yet seen.
                snaps = (snaps + [dict(step=step, model=clone(model), emas=[clone(e) for e in emas],
                                       opt=copy.deepcopy(opt.state_dict()))])[-2:]
        if ck and rank == 0 and time.time() - last_ck > a.ckpt_minutes * 60:
            save_state(ck, model, emas, opt, step, time.time() - start, losses)
            last_ck = time.time()

    if rank == 0:
        if ck:
            save_state(ck, model, emas, opt, step, time.time() - start, losses)
        files = export(emas, decays, c, a, step, world, a.out)
        json.dump({"steps": step, "batch": a.batch * world, "minutes": (time.time() - start) / 60, "losses": losses}, open(os.path.join(a.out, "loss.json"), "w"))
        np.save(os.path.join(a.out, "samples.npy"), sample(emas[0], c, 64, dev))
        print(f"done: {step} steps; wrote {', '.join(files)}", flush=True)
    if ddp:
        dist.destroy_process_group()


def shift(x, n):
    """Each image moved by its own random offset of up to `n` pixels in x and y; what moves in
    is white (1.0), the emoji's background."""
    b, _, h, w = x.shape
    padded = F.pad(x, (n, n, n, n), value=1.0)
    dy, dx = (torch.randint(0, 2 * n + 1, (2, b), device=x.device))
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def export(emas, decays, c, a, step, world, out):
    """Writes each EMA's weights: the first into `out`, the others into `out/ema<decay>/`."""
    meta = dict(c, preset=a.preset, train_steps=step, train_batch=a.batch * world,
                data="emoji-datasource-twitter+google 16.0.0 64px")
    files = []
    for i, (e, decay) in enumerate(zip(emas, decays)):
        folder = out if i == 0 else os.path.join(out, f"ema{decay}")
        os.makedirs(folder, exist_ok=True)
        files += export_sharded(e.state_dict(), dict(meta, train_ema=decay), folder, max_shard_bytes=15 << 20)
    return files


def clone(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def save_state(path, model, emas, opt, step, elapsed, losses):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "emas": [e.state_dict() for e in emas], "opt": opt.state_dict(), "step": step,
                "elapsed": elapsed, "losses": losses, "cuda_rng": [torch.cuda.get_rng_state()]}, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def sample(model, c, n, dev):
    """DDPM with the checkpoint's schedule, as the Rust sampler does; returns uint8 [n, 64, 64, 3]."""
    betas, alphas, abar = schedule(c["steps"], c["schedule_s"])
    x = torch.randn(n, c["channels"], c["input"], c["input"], device=dev)
    for t in range(c["steps"] - 1, -1, -1):
        eps, _ = model(x, torch.full((n,), float(t), device=dev))
        x = (x - float(betas[t] / (1 - abar[t]).sqrt()) * eps) / float(alphas[t].sqrt())
        if t > 0:
            x = x + float(betas[t].sqrt()) * torch.randn_like(x)
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return img.permute(0, 2, 3, 1).cpu().numpy()


if __name__ == "__main__":
    main()
