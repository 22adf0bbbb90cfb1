"""Sample quality for this domain: FID's analogue with a feature extractor trained here.

FID's Inception weights cannot be downloaded on these machines, so the features come from a
small classifier trained on the emoji set itself (labels: the packages' category and
subcategory, 90 classes or so), on a training split only. The split is by emoji (every skin
tone and both artwork sets of one emoji on the same side, 10% held out by a hash of its
id), so the held-out images are emoji no model trained on the split has seen.

    python3 model/train/quality.py classifier --data .data/emoji64.npz --out .data/classifier.pt
    python3 model/train/quality.py sample --weights model/weights/favicon-s-emoji --n 2000 --out s.npy
    python3 model/train/quality.py score --data .data/emoji64.npz --classifier .data/classifier.pt \
        --samples s.npy [--samples other.npy ...]

`score` prints one Markdown table: the floor (the held-out split against the training
split), then each samples file against the held-out split: the Fréchet distance between
the classifier's penultimate-layer features, precision (the fraction of samples inside the
real data's k-nearest-neighbour balls, k = 3) and recall (the fraction of real images inside
the samples' balls), as in Kynkäänniemi et al. 2019. The numbers only compare within one
classifier: retraining it changes the scale.
"""
import argparse
import hashlib
import os
import sys

import numpy as np

HELD_OUT_PERCENT = 10
FEATURES = 256


def held_out(emoji_ids):
    """Boolean mask of the held-out images: 10% of the emoji, by a hash of their id."""
    h = [int(hashlib.sha256(str(e).encode()).hexdigest()[:8], 16) % 100 for e in emoji_ids]
    return np.array(h) < HELD_OUT_PERCENT


def labels(data):
    """Class index per image (category/subcategory, classes sorted by name)."""
    names = np.array([f"{c}/{s}" for c, s in zip(data["category"], data["subcategory"])])
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[n] for n in names]), classes


def sqrtm_psd(a):
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet(f1, f2):
    """Fréchet distance between Gaussians fitted to two feature sets ([n, d] each):
    |mu1 - mu2|² + tr(S1 + S2 - 2 (S1^½ S2 S1^½)^½)."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    r = sqrtm_psd(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r @ s2 @ r), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def _distances(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(d, 0, None))


def precision_recall(real, fake, k=3):
    """(precision, recall) of `fake` against `real` by k-nearest-neighbour balls."""
    def radii(x):
        d = _distances(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def covered(points, centers, r):
        return float((_distances(points, centers) <= r[None, :]).any(1).mean())

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def _torch():
    import torch
    import torch.nn as nn
    return torch, nn


def classifier(classes):
    """A small VGG-like network; its penultimate layer (FEATURES wide) gives the features."""
    torch, nn = _torch()

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    body = nn.Sequential(*block(3, 32), *block(32, 64), *block(64, 128), *block(128, FEATURES),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return nn.ModuleDict({"body": body, "head": nn.Linear(FEATURES, classes)})


def to_tensor(images, dev):
    """uint8 [n, 64, 64, 3] -> float [n, 3, 64, 64] in [-1, 1]."""
    torch, _ = _torch()
    return torch.from_numpy(np.ascontiguousarray(images)).to(dev).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_classifier(args):
    torch, nn = _torch()
    data = np.load(args.data)
    y, classes = labels(data)
    train = ~held_out(data["emoji"])
    x, y = data["images"][train], y[train]
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    net = classifier(len(classes)).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = args.epochs * (len(x) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    xt, yt = to_tensor(x, dev), torch.from_numpy(y).to(dev)
    rng = np.random.default_rng(0)
    for step in range(steps):
        i = torch.from_numpy(rng.integers(0, len(x), args.batch)).to(dev)
        xb = xt[i]
        # Shifts of up to 6 pixels (white padding) and horizontal flips.
        dx, dy = rng.integers(-6, 7, 2)
        xb = torch.roll(nn.functional.pad(xb, (6, 6, 6, 6), value=1.0), (int(dy), int(dx)), (2, 3))[:, :, 6:70, 6:70]
        if rng.random() < 0.5:
            xb = xb.flip(3)
        loss = nn.functional.cross_entropy(net["head"](net["body"](xb)), yt[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0:
            print(f"step {step}/{steps} loss {loss.item():.3f}", flush=True)
    net.eval()
    with torch.no_grad():
        test = held_out(data["emoji"])
        yh, _ = labels(data)
        pred = net["head"](net["body"](to_tensor(data["images"][test], dev))).argmax(1).cpu().numpy()
        print(f"held-out accuracy {np.mean(pred == yh[test]):.3f} ({len(classes)} classes, "
              f"{train.sum()} training images, {test.sum()} held out)")
    torch.save({"classes": [str(c) for c in classes], "state": net.state_dict()}, args.out)


def features(net, images, dev, batch=512):
    torch, _ = _torch()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(net["body"](to_tensor(images[i:i + batch], dev)).double().cpu().numpy())
    return np.concatenate(out)


def sample(args):
    """`n` samples of a checkpoint folder with the original DDPM sampler (the default of
    `webdit generate`), as uint8 [n, 64, 64, 3]."""
    torch, _ = _torch()
    sys.path.insert(0, os.path.dirname(__file__))
    from sample_check import ddpm, load
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    m, c = load(args.weights)
    m = m.to(dev).eval()
    out = []
    for i in range(0, args.n, args.batch):
        out.append(ddpm(m, c, min(args.batch, args.n - i), dev, clip=False, seed=args.seed + i))
    np.save(args.out, np.concatenate(out))


def score(args):
    torch, _ = _torch()
    data = np.load(args.data)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    saved = torch.load(args.classifier, map_location=dev)
    net = classifier(len(saved["classes"])).to(dev)
    net.load_state_dict(saved["state"])
    net.eval()
    test = held_out(data["emoji"])
    real = features(net, data["images"][test], dev)
    rows = [("training split (the floor)", features(net, data["images"][~test], dev))]
    rows += [(os.path.splitext(os.path.basename(s))[0], features(net, np.load(s), dev)) for s in args.samples]
    print(f"held-out split: {len(real)} images\n")
    print("| against the held-out split | n | Fréchet distance | precision | recall |")
    print("|---|---|---|---|---|")
    for name, f in rows:
        p, r = precision_recall(real, f[:args.max_pr])
        print(f"| {name} | {len(f)} | {frechet(real, f):.2f} | {p:.3f} | {r:.3f} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("classifier")
    a.add_argument("--data", default=".data/emoji64.npz")
    a.add_argument("--out", default=".data/classifier.pt")
    a.add_argument("--epochs", type=int, default=40)
    a.add_argument("--batch", type=int, default=128)
    a = sub.add_parser("sample")
    a.add_argument("--weights", default="model/weights/favicon-s-emoji")
    a.add_argument("--n", type=int, default=2000)
    a.add_argument("--batch", type=int, default=500)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--out", required=True)
    a = sub.add_parser("score")
    a.add_argument("--data", default=".data/emoji64.npz")
    a.add_argument("--classifier", default=".data/classifier.pt")
    a.add_argument("--samples", action="append", default=[])
    a.add_argument("--max-pr", type=int, default=4000, help="samples used for precision/recall")
    args = ap.parse_args()
    {"classifier": train_classifier, "sample": sample, "score": score}[args.cmd](args)


if __name__ == "__main__":
    main()
