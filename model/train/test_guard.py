"""Tests of train.py's loss-spike guard (no torch): python3 -m unittest model/train/test_guard.py"""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from guard import SpikeGuard  # noqa: E402


def noisy(rng, n, level=0.03):
    return [level * rng.uniform(0.7, 1.4) for _ in range(n)]


class Guard(unittest.TestCase):
    def test_the_logged_loss_of_a_late_divergence_is_caught(self):
        # The favicon-s4 run's shape: a noisy plateau, then a finite blow-up.
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

    def test_noise_and_single_outliers_pass(self):
        rng = random.Random(1)
        g = SpikeGuard()
        losses = noisy(rng, 2000)
        for i in range(100, 2000, 97):
            losses[i] = 0.5  # one bad batch, not a divergence
        self.assertFalse(any(g.observe(x) for x in losses))
        # A slow drift down (training) never counts as a spike either.
        self.assertFalse(any(g.observe(0.03 * (1 - i / 4000)) for i in range(2000)))

    def test_nothing_is_called_before_a_baseline(self):
        g = SpikeGuard(window=40)
        self.assertFalse(g.calm())
        # Early losses fall from ~1 to ~0.05: no baseline yet, no spike.
        self.assertFalse(any(g.observe(1.0 / (1 + i)) for i in range(19)))


if __name__ == "__main__":
    unittest.main()
