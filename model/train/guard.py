"""Loss-spike detection for train.py (plain Python, so its test needs no torch).

A run can diverge late and still have a finite loss: favicon-s4 on four H200s went from
~0.03 to 0.97 and 2.1 at step 29,000 of 32,000, recovered to 0.06, and the EMA exported
from it scored a Fréchet distance of 929 (docs/quality.md). The trainer logs a loss every
50 steps; `SpikeGuard` calls a spike when `run` logged losses in a row exceed `factor` times
the median of the last `window` healthy ones, and the trainer then rolls the model, EMA and
optimizer back to a snapshot taken before it and goes on at a lower learning rate.
"""
from collections import deque
from statistics import median


class SpikeGuard:
    def __init__(self, window=40, factor=4.0, run=4):
        self.healthy = deque(maxlen=window)
        self.factor = factor
        self.run = run
        self.streak = 0

    def observe(self, loss):
        """Takes one logged loss; True when the run is spiking (then the streak restarts)."""
        if len(self.healthy) >= self.healthy.maxlen // 2 and loss > self.factor * median(self.healthy):
            self.streak += 1
            if self.streak >= self.run:
                self.streak = 0
                return True
            return False
        self.streak = 0
        self.healthy.append(loss)
        return False

    def calm(self):
        """Whether the last logged loss was healthy (a snapshot now is safe to roll back to)."""
        return self.streak == 0 and len(self.healthy) >= self.healthy.maxlen // 2
