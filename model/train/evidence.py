"""Evidence for the shipped weights: the loss curve (PNG) and a memorization check.

    python3 model/train/evidence.py LOSS_JSON SAMPLE_DIR DATA_NPZ OUT_DIR

For each generated sample (PNGs written by `webdit generate --batch 256`), the L2 distance
to its nearest training image, compared with the nearest-neighbour distances of training
images among the rest of the training set. Distances are over the 64x64x3 image in [0, 1].
"""
import glob
import json
import os
import sys

import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def nearest(queries, base):
    """Distance from each query to its nearest row of `base`."""
    bn = (base ** 2).sum(1)
    out = []
    for i in range(0, len(queries), 256):
        q = queries[i:i + 256]
        d = (q ** 2).sum(1)[:, None] + bn[None] - 2 * q @ base.T
        out.append(np.sqrt(np.maximum(d.min(1), 0)))
    return np.concatenate(out)


def main(loss_json, sample_dir, data, out):
    log = json.load(open(loss_json))
    steps, _, loss = zip(*log["losses"])
    k = 20
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    plt.figure(figsize=(6, 3.5))
    plt.plot(steps, loss, alpha=0.3, label="loss (every 50 steps)")
    plt.plot(steps[k - 1:], smooth, label=f"moving average ({k})")
    plt.yscale("log")
    plt.xlabel(f"step (batch {log['batch']})" if "batch" in log else "step")
    plt.ylabel("weighted eps MSE + 0.6 x0 MSE")
    plt.title(f"favicon-s on emoji: {log['steps']} steps, {log['minutes']:.1f} min on one H200")
    plt.legend()
    plt.tight_layout()
    plt.savefig(os.path.join(out, "loss.png"), dpi=100)

    train = np.load(data)["images"].reshape(-1, 64 * 64 * 3).astype(np.float32) / 255
    files = sorted(glob.glob(os.path.join(sample_dir, "*.png")))
    samples = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).reshape(len(files), -1).astype(np.float32) / 255
    d_samples = nearest(samples, train)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(train), 1024, replace=False)
    # Each training image's nearest *other* training image (the second smallest distance).
    d_train = np.array([np.sqrt(np.sort(((train - train[i]) ** 2).sum(1))[1]) for i in idx])
    q = [5, 25, 50, 75, 95]
    rows = [("generated samples → nearest training image", len(d_samples), np.percentile(d_samples, q), d_samples.min()),
            ("training images → nearest other training image", len(d_train), np.percentile(d_train, q), d_train.min())]
    table = ["| distances (L2, pixels in [0,1]) | n | p5 | p25 | median | p75 | p95 | min |", "|---|---|---|---|---|---|---|---|"]
    for name, n, p, m in rows:
        table.append(f"| {name} | {n} | " + " | ".join(f"{v:.2f}" for v in p) + f" | {m:.2f} |")
    closer = (d_samples < np.percentile(d_train, 5)).mean() * 100
    table.append("")
    table.append(f"{closer:.1f}% of samples are closer to a training image than 95% of training images are to their nearest neighbour.")
    open(os.path.join(out, "memorization.md"), "w").write("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main(*sys.argv[1:5])
