"""Tests of train.py's loss-spike guard (no torch): python3 -m unittest model/train/test_guard.py"""
import json
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from guard import SpikeGuard  # noqa: E402


def noisy(rng, n, level=0.03):
    # The logged loss of one batch: ±40% around its level (the favicon-s4 run's spread).
    return [level * rng.uniform(0.75, 1.45) for _ in range(n)]


class Guard(unittest.TestCase):
    def test_a_blow_up_is_caught(self):
        rng = random.Random(0)
        g = SpikeGuard()
        self.assertFalse(any(g.observe(x) for x in noisy(rng, 500)))
        self.assertTrue(g.calm())
        said, calm = [], []
        for x in [0.97, 2.1, 1.5, 0.8]:
            said.append(g.observe(x))
            calm.append(g.calm())
        self.assertEqual(said, [False, False, False, True])
        # No snapshot is taken while the loss is up.
        self.assertEqual(calm[:3], [False, False, False])

    def test_a_creep_stops_snapshots_then_is_caught(self):
        # The favicon-s4 run: a plateau at 0.03, then the loss creeps to 0.05-0.06.
        rng = random.Random(1)
        g = SpikeGuard()
        self.assertFalse(any(g.observe(x) for x in noisy(rng, 400)))
        calm, said = [], []
        for x in noisy(rng, 40, level=0.06):
            said.append(g.observe(x))
            calm.append(g.calm())
            if said[-1]:
                break
        self.assertTrue(said[-1], "the creep is caught")
        self.assertFalse(all(calm[:len(calm) - 1]), "snapshots stop before it is")

    def test_noise_single_outliers_and_training_pass(self):
        rng = random.Random(2)
        g = SpikeGuard()
        losses = noisy(rng, 2000)
        for i in range(100, 2000, 97):
            losses[i] = 0.5  # one bad batch, not a divergence
        self.assertFalse(any(g.observe(x) for x in losses))
        # Falling losses (early training) never count.
        g = SpikeGuard()
        self.assertFalse(any(g.observe(x) for x in [1.0 / (1 + i / 50) for i in range(2000)]))

    def test_the_healthy_part_of_the_recorded_run_passes(self):
        # Logged losses of the run that diverged, up to step 24,000 (before the creep).
        path = os.path.join(os.path.dirname(__file__), "results", "favicon-s4-ddp-loss.json")
        with open(path) as f:
            log = json.load(f)["losses"]
        losses = [l for step, _, l in log if step <= 24000]
        g = SpikeGuard()
        self.assertFalse(any(g.observe(x) for x in losses))
        self.assertTrue(g.calm())
        # The recorded blow-up that followed is caught.
        later = [l for step, _, l in log if 24000 < step <= 25750]
        self.assertTrue(any(g.observe(x) for x in later))


if __name__ == "__main__":
    unittest.main()
