"""Score histogram: are good and defective images separated, and where does 0.5 fall?"""
from __future__ import annotations

import numpy as np


def plot_score_histogram(scores, labels, path, title="image scores", threshold=0.5):
    from trainer.plots import _pyplot, _save

    plt = _pyplot()
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bins = np.linspace(0.0, 1.0, 41)
    for cls, name, color in ((0, "good", "tab:green"), (1, "defective", "tab:red")):
        if (y == cls).any():
            ax.hist(s[y == cls], bins=bins, alpha=0.6, color=color, label=f"{name} (n={(y == cls).sum()})")
    ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold}")
    ax.set_xlabel("anomaly score (model output)")
    ax.set_ylabel("images")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)
