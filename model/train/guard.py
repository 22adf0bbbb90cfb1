"""Loss-spike detection for train.py (plain Python, so its test needs no torch).

A run can diverge late and still have a finite loss. favicon-s4 on four H200s (global batch
1,024, lr 2e-3) crept from a logged loss of ~0.03 to 0.05 over 1,500 steps, then blew up to
0.5–2 around step 29,000 of 32,000 and fell back to 0.06; the EMA exported from it drew
noise (Fréchet distance 929, docs/quality.md). The trainer logs a loss every 50 steps;
`SpikeGuard` keeps the best median of `window` logged losses seen so far and calls

- a spike when the median of the last `window` exceeds `creep` × that best, or `run` logged
  losses in a row exceed `factor` × it (the trainer then rolls the model, EMA and optimizer
  back to a snapshot and goes on at half the learning rate);
- the run calm (a snapshot now is safe to roll back to) when that median is within `calm`
  × the best and no loss is up.
"""
from collections import deque
from statistics import median


class SpikeGuard:
    def __init__(self, window=10, factor=4.0, run=4, creep=1.8, calm=1.3):
        self.recent = deque(maxlen=window)
        self.best = None
        self.factor, self.run, self.creep, self.calm_within = factor, run, creep, calm
        self.streak = 0

    def observe(self, loss):
        """Takes one logged loss; True when the run is spiking (then it starts afresh)."""
        self.recent.append(loss)
        if len(self.recent) < self.recent.maxlen:
            return False
        m = median(self.recent)
        if self.best is None or m < self.best:
            self.best = m
        self.streak = self.streak + 1 if loss > self.factor * self.best else 0
        if self.streak >= self.run or m > self.creep * self.best:
            self.streak = 0
            self.recent.clear()
            return True
        return False

    def calm(self):
        """Whether a snapshot taken now predates any trouble the guard can see."""
        return (len(self.recent) == self.recent.maxlen and self.streak == 0
                and median(self.recent) <= self.calm_within * self.best)
