"""Tests of sweep.py's orchestration (no GPU, no torch): python3 -m unittest model/train/test_sweep.py

sweep.py runs beside stand-ins for train.py and quality.py that write what the real ones
write (checkpoint folders, a classifier, samples, a table) and log the GPU they were given.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

TRAIN = r'''
import os, sys
argv = sys.argv[1:]
out = argv[argv.index("--out") + 1]
open(out + ".gpu", "w").write(os.environ["CUDA_VISIBLE_DEVICES"])
if "--fail" in argv:
    print("error: the loss is nan at step 850")
    sys.exit(3)
for d in [out, os.path.join(out, "at75")]:
    os.makedirs(d)
    open(os.path.join(d, "model.safetensors.index.json"), "w").write("{}")
print("done")
'''

QUALITY = r'''
import os, sys
cmd, argv = sys.argv[1], sys.argv[2:]
out = argv[argv.index("--out") + 1] if "--out" in argv else None
if cmd == "classifier":
    open(out, "w").write("classifier")
elif cmd == "sample":
    weights = argv[argv.index("--weights") + 1]
    open(out, "w").write(weights)
    open(out + ".gpu", "w").write(os.environ["CUDA_VISIBLE_DEVICES"])
elif cmd == "score":
    assert open(argv[argv.index("--classifier") + 1]).read() == "classifier"
    names = [os.path.basename(argv[i + 1])[:-4] for i, a in enumerate(argv) if a == "--samples"]
    print("| against the held-out split | n |")
    for n in names:
        print(f"| {n} | 2000 |")
'''


def read(path):
    with open(path) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Sweep(unittest.TestCase):
    def test_runs_scores_and_reports_failures(self):
        with tempfile.TemporaryDirectory() as tmp:
            code = os.path.join(tmp, "code")
            os.makedirs(code)
            shutil.copy(os.path.join(HERE, "sweep.py"), code)
            write(os.path.join(code, "train.py"), TRAIN)
            write(os.path.join(code, "quality.py"), QUALITY)
            out = os.path.join(tmp, "out")
            runs = ["--run", "a=", "--run", "b=--set heads=2", "--run", "bad=--fail", "--run", "c=--dropout 0.1"]
            r = subprocess.run([sys.executable, os.path.join(code, "sweep.py"), "--out", out, "--gpus", "2",
                                "--minutes", "0.1", *runs], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("bad: failed (3)", r.stdout)
            self.assertIn("the loss is nan", r.stdout)
            table = read(os.path.join(out, "scores.md"))
            rows = [line.split("|")[1].strip() for line in table.splitlines()[1:]]
            self.assertEqual(rows, ["shipped", "a", "a_at75", "b", "b_at75", "c", "c_at75"])
            # Each run and each sampling job had one of the two GPUs.
            for name in ["a", "b", "bad", "c"]:
                self.assertIn(read(os.path.join(out, name + ".gpu")), ["0", "1"])
            for name in rows:
                self.assertIn(read(os.path.join(out, "samples", name + ".npy.gpu")), ["0", "1"])
            self.assertEqual(read(os.path.join(out, "samples", "b_at75.npy")),
                             os.path.join(out, "b", "at75"))

    def test_rejects_a_run_without_a_name(self):
        r = subprocess.run([sys.executable, os.path.join(HERE, "sweep.py"), "--out", "x", "--run", "heads2"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("expected NAME=ARGS", r.stderr)


if __name__ == "__main__":
    unittest.main()
