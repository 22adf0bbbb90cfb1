"""Builds the training set from the emoji npm packages installed under .data/.

    (cd .data && npm install emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0)
    python3 model/train/prepare_data.py            # writes .data/emoji64.npz

Each 64x64 RGBA PNG is composited onto white (icons sit on light pages) and stored as
uint8 RGB; training maps it to [-1, 1]. Images: Twemoji (CC-BY 4.0) and Noto Emoji
(Apache 2.0); see model/weights/favicon-s-emoji/ATTRIBUTION.md.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", ".data")
SETS = ["twitter", "google"]


def images(set_name):
    pkg = os.path.join(ROOT, "node_modules", f"emoji-datasource-{set_name}")
    meta = json.load(open(os.path.join(pkg, "emoji.json")))
    folder = os.path.join(pkg, "img", set_name, "64")
    for e in meta:
        # Skin-tone variations carry their base emoji's id, so that a split by id keeps
        # every variation of an emoji on one side.
        files = [e["image"]] + [v["image"] for v in (e.get("skin_variations") or {}).values()]
        for f in files:
            path = os.path.join(folder, f)
            if os.path.exists(path):
                yield path, e["category"], e.get("subcategory", ""), e["unified"]


def load(path):
    im = Image.open(path).convert("RGBA")
    if im.size != (64, 64):
        im = im.resize((64, 64), Image.LANCZOS)
    white = Image.new("RGBA", im.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, im).convert("RGB"), dtype=np.uint8)


def main():
    arrays, cats, subcats, ids, sources = [], [], [], [], []
    for s in SETS:
        for path, cat, sub, uid in images(s):
            arrays.append(load(path))
            cats.append(cat)
            subcats.append(sub)
            ids.append(uid)
            sources.append(s)
    if not arrays:
        sys.exit("no images found: install the npm packages into .data/ first (see the docstring)")
    x = np.stack(arrays)
    out = os.path.join(ROOT, "emoji64.npz")
    np.savez_compressed(out, images=x, category=np.array(cats), subcategory=np.array(subcats),
                        emoji=np.array(ids), source=np.array(sources))
    print(f"{len(x)} images, {os.path.getsize(out) / 2**20:.1f} MiB -> {out}")


if __name__ == "__main__":
    main()
