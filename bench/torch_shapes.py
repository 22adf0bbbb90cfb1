"""PyTorch (cuBLAS / cuDNN) at the shapes of `bench`'s kernel table, timed the way `bench`
times Web DiT: 20 back-to-back calls between two CUDA events, median of 7 samples, after a
warm-up and with the GPU kept busy first (an idle GPU lowers its clock). fp32, TF32 off.

Run on the GPU machine in the same command as `bench`:  python3 bench/torch_shapes.py
"""
import torch
import torch.nn.functional as F

PRESETS = {
    # tokens, dim, inner (heads × dim_head), heads, dim_head, hidden, patch_dim, depth, time_emb_dim
    "favicon-s": dict(tokens=64, dim=512, heads=1, dh=128, hidden=2048, pd=192, depth=4, temb=128),
    "favicon-b": dict(tokens=256, dim=768, heads=1, dh=192, hidden=3072, pd=48, depth=12, temb=768),
}
REPS = 20
DEV = "cuda"


def burn():
    a = torch.randn(4096, 4096, device=DEV)
    for _ in range(3):
        a @ a


def median_us(fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(7):
        burn()
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(REPS):
            fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) * 1e3 / REPS)
    ts.sort()
    return ts[3]


def linear(m, n, k):
    x = torch.randn(m, k, device=DEV)
    w = torch.randn(n, k, device=DEV)
    y = torch.empty(m, n, device=DEV)
    return lambda: torch.matmul(x, w.t(), out=y)


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"# PyTorch {torch.__version__} on {torch.cuda.get_device_name()}, fp32, TF32 off\n")
    print("| kernel | shape | PyTorch time |\n|---|---|---|")

    def row(what, shape, fn):
        print(f"| {what} | {shape} | {median_us(fn):.1f} µs |", flush=True)

    row("matmul", "4096×4096×4096", linear(4096, 4096, 4096))
    x = torch.empty(1, device=DEV)
    row("empty launch (x += 1, one element)", "1", lambda: x.add_(1))
    for name, c in PRESETS.items():
        inner = c["heads"] * c["dh"]
        for batch in (1, 16):
            m = batch * c["tokens"]
            for what, (mm, n, k) in [
                ("patch embed", (m, c["dim"], c["pd"])),
                ("qkv", (m, 3 * inner, c["dim"])),
                ("attn out", (m, c["dim"], inner)),
                ("mlp up", (m, c["hidden"], c["dim"])),
                ("mlp down", (m, c["dim"], c["hidden"])),
                ("to pixels", (m, c["pd"], c["dim"])),
            ]:
                row(f"{name} b{batch} {what}", f"{mm}×{n}×{k}", linear(mm, n, k))
            q, k, v = (torch.randn(batch, c["heads"], c["tokens"], c["dh"], device=DEV) for _ in range(3))
            row(f"{name} b{batch} attention", f"{batch}×{c['tokens']}×{c['dh']}",
                lambda: F.scaled_dot_product_attention(q, k, v))
            xs = torch.randn(batch, c["tokens"], c["dim"], device=DEV)
            scale = torch.randn(batch, 1, c["dim"], device=DEV)
            shift = torch.randn(batch, 1, c["dim"], device=DEV)

            def adaln():
                # The reference's normalization: unbiased std, eps added to the std.
                mu = xs.mean(-1, keepdim=True)
                sd = xs.std(-1, keepdim=True)
                return (xs - mu) / (sd + 1e-5) * (1 + scale) + shift

            row(f"{name} b{batch} adaln (eager, several kernels)", f"{m}×{c['dim']}", adaln)
        mw = (2 * c["depth"] + 1) * 2 * c["dim"]
        row(f"{name} modulations", f"1×{mw}×{c['temb']}", linear(1, mw, c["temb"]))


if __name__ == "__main__":
    main()
