"""Plain statistics for the service: a fixed-size ring of latencies and the score-drift tracker."""
from __future__ import annotations

from collections import deque

import numpy as np


class Ring:
    """Fixed-size float ring buffer (no growth in a service that runs for months)."""

    def __init__(self, n=65536):
        self.buf = np.zeros(n, np.float64)
        self.n = 0

    def add(self, x):
        self.buf[self.n % self.buf.size] = x
        self.n += 1

    def values(self, last=None):
        k = min(self.n, self.buf.size)
        if last is not None:
            k = min(k, last)
        if k == 0:
            return self.buf[:0]
        idx = (np.arange(self.n - k, self.n) % self.buf.size)
        return self.buf[idx]

    def pct(self, q, last=None):
        v = self.values(last)
        return float(np.percentile(v, q)) if v.size else None


class DriftTracker:
    """Rolling mean score of the last N passed items minus the mean of the first N (a baseline).

    A slow upward creep of the 'good' parts' score is the usual first sign of a
    dirty lens, changed lighting or a new supplier, long before parts fail.
    """

    def __init__(self, window=100):
        self.window = max(1, int(window))
        self.reset()

    def reset(self):
        self.baseline = []
        self.recent = deque(maxlen=self.window)
        self._sum = 0.0

    def add(self, score):
        score = float(score)
        if len(self.baseline) < self.window:
            self.baseline.append(score)
        if len(self.recent) == self.recent.maxlen:
            self._sum -= self.recent[0]
        self.recent.append(score)
        self._sum += score

    @property
    def drift(self):
        if len(self.baseline) < self.window:
            return 0.0
        return self._sum / len(self.recent) - sum(self.baseline) / len(self.baseline)

    @property
    def recent_mean(self):
        return self._sum / len(self.recent) if self.recent else 0.0
