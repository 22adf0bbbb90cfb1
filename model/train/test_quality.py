"""Tests of the sample-quality metric (numpy only): python3 -m unittest model/train/test_quality.py"""
import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from quality import frechet, held_out, precision_recall, sqrtm_psd  # noqa: E402


class Quality(unittest.TestCase):
    def test_frechet_of_known_gaussians(self):
        rng = np.random.default_rng(1)
        d, n = 8, 200_000
        m = np.arange(d) / d
        a = rng.standard_normal((n, d))
        b = 2 * rng.standard_normal((n, d)) + m
        # N(0, I) against N(m, 4I): |m|² + d·(1 + 4 - 2·2).
        want = (m ** 2).sum() + d
        self.assertAlmostEqual(frechet(a, b), want, delta=0.05 * want)
        self.assertLess(abs(frechet(a, a)), 1e-6)

    def test_sqrtm(self):
        rng = np.random.default_rng(2)
        x = rng.standard_normal((5, 5))
        s = x @ x.T
        r = sqrtm_psd(s)
        np.testing.assert_allclose(r @ r, s, atol=1e-9)

    def test_precision_recall(self):
        rng = np.random.default_rng(3)
        real = rng.standard_normal((500, 4))
        self.assertEqual(precision_recall(real, real), (1.0, 1.0))
        far = rng.standard_normal((500, 4)) + 100
        self.assertEqual(precision_recall(real, far), (0.0, 0.0))
        # Samples collapsed onto one real point: precise, but recall only that ball.
        p, r = precision_recall(real, np.repeat(real[:1], 500, 0))
        self.assertEqual(p, 1.0)
        self.assertLess(r, 0.05)

    def test_split_keeps_an_emoji_together(self):
        ids = [f"1F{i:03X}" for i in range(2000)]
        mask = held_out(ids + ids)
        self.assertTrue((mask[:2000] == mask[2000:]).all())
        self.assertTrue(0.07 < mask[:2000].mean() < 0.13)


if __name__ == "__main__":
    unittest.main()
