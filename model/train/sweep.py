"""Trains several recipes side by side, one per GPU, then scores every checkpoint in one table.

    python3 model/train/sweep.py --out /tmp/sweep --minutes 7 \\
        --run shipped= --run heads2="--set heads=2" --run drop="--dropout 0.1 --ema 0.9999,0.9995"

Each `--run NAME=ARGS` is `train.py --train-split --minutes M ARGS --out OUT/NAME` on a GPU of
its own (runs beyond the GPUs wait for one). Then a fresh classifier (`quality.py
classifier`), 2,000 samples of the shipped model and of every checkpoint the runs exported
(their EMAs and snapshots too), and `quality.py score`: one Markdown table, also written to
OUT/scores.md, each row named after its checkpoint's folder. A run that fails is reported
with the end of its log and left out of the table. This is how docs/quality.md's tables from
the seventh session on were made.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIPPED = os.path.join(HERE, "..", "weights", "favicon-s-emoji")


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--run", action="append", default=[], metavar="NAME=ARGS",
                    help="a recipe: train.py's arguments beyond --train-split, --minutes and --out")
    ap.add_argument("--gpus", type=int, default=0, help="GPUs to use (default: all)")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--data", default=".data/emoji64.npz")
    a = ap.parse_args()
    a.runs = []
    for r in a.run:
        name, sep, args = r.partition("=")
        if not sep or not name or "/" in name:
            ap.error(f"--run {r!r}: expected NAME=ARGS")
        a.runs.append((name, args.split()))
    if not a.runs:
        ap.error("no --run given")
    return a


def gpu_count():
    import torch
    return torch.cuda.device_count()


def run_all(jobs, gpus, per_gpu=1):
    """Runs `jobs` ([(name, argv, log path)]) with at most `per_gpu` of them on each GPU at a
    time; returns {name: exit status}."""
    pending, running, done = list(jobs), {}, {}
    while pending or running:
        for slot in range(gpus * per_gpu):
            if slot not in running and pending:
                name, argv, log = pending.pop(0)
                env = dict(os.environ, CUDA_VISIBLE_DEVICES=str(slot % gpus), PYTHONUNBUFFERED="1")
                with open(log, "w") as f:
                    running[slot] = (name, subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT))
        time.sleep(0.2)
        for slot, (name, p) in list(running.items()):
            if p.poll() is not None:
                done[name] = p.returncode
                del running[slot]
    return done


def checkpoints(folder):
    """Every folder below `folder` (itself included) that holds an exported checkpoint."""
    return sorted(d for d, _, files in os.walk(folder) if "model.safetensors.index.json" in files)


def tail(path, n=5):
    with open(path) as f:
        return "".join(f.readlines()[-n:])


def main():
    a = parse()
    gpus = a.gpus or gpu_count()
    if gpus < 1:
        sys.exit("error: no GPU")
    os.makedirs(a.out, exist_ok=True)
    py = sys.executable
    jobs = [(name, [py, os.path.join(HERE, "train.py"), "--data", a.data, "--train-split",
                    "--minutes", str(a.minutes), *args, "--out", os.path.join(a.out, name)],
             os.path.join(a.out, f"{name}.log")) for name, args in a.runs]
    status = run_all(jobs, gpus)
    for name, _, log in jobs:
        print(f"{name}: {'done' if status[name] == 0 else f'failed ({status[name]})'}\n{tail(log, 2)}", flush=True)

    classifier = os.path.join(a.out, "classifier.pt")
    quality = os.path.join(HERE, "quality.py")
    scored = [("shipped", SHIPPED)] + [
        (os.path.relpath(c, a.out).replace(os.sep, "_"), c)
        for name, _, _ in jobs if status[name] == 0 for c in checkpoints(os.path.join(a.out, name))]
    samples = os.path.join(a.out, "samples")
    os.makedirs(samples, exist_ok=True)
    jobs = [("classifier", [py, quality, "classifier", "--data", a.data, "--out", classifier],
             os.path.join(a.out, "classifier.log"))]
    jobs += [(name, [py, quality, "sample", "--weights", c, "--n", str(a.samples),
                     "--out", os.path.join(samples, f"{name}.npy")], os.path.join(samples, f"{name}.log"))
             for name, c in scored]
    # Sampling is short: two jobs per GPU.
    failed = {n: s for n, s in run_all(jobs, gpus, per_gpu=2).items() if s != 0}
    if "classifier" in failed:
        sys.exit(f"error: the classifier failed:\n{tail(jobs[0][2])}")
    for name in failed:
        print(f"sampling {name} failed:\n{tail(os.path.join(samples, f'{name}.log'))}")
    score = [py, quality, "score", "--data", a.data, "--classifier", classifier]
    for name, _ in scored:
        if name not in failed:
            score += ["--samples", os.path.join(samples, f"{name}.npy")]
    table = subprocess.run(score, check=True, capture_output=True, text=True).stdout
    print(table)
    with open(os.path.join(a.out, "scores.md"), "w") as f:
        f.write(table)


if __name__ == "__main__":
    main()
