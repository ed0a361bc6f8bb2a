"""Training curves and confusion matrices as PNGs (matplotlib Agg, written atomically)."""
from __future__ import annotations

import io

from edge.atomic import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on a training server
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_curves(histories, path, title="training"):
    """``histories``: {phase: keras History.history dict}; loss and defect AUC per epoch, phases in a row."""
    plt = _pyplot()
    phases = [(name, h) for name, h in histories.items() if h and h.get("loss")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    offset = 0
    for name, h in phases:
        epochs = list(range(offset + 1, offset + len(h["loss"]) + 1))
        for key, ax, label in (("loss", axes[0], "loss"), ("defect_auc", axes[1], "defect AUROC")):
            if key in h:
                axes_plot(ax, epochs, h[key], f"{name} train")
            if f"val_{key}" in h:
                axes_plot(ax, epochs, h[f"val_{key}"], f"{name} val", dashed=True)
            ax.set_title(label)
            ax.set_xlabel("epoch (all phases)")
        offset += len(h["loss"])
    if not phases:
        axes[0].text(0.5, 0.5, "no epochs trained", ha="center", va="center")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def axes_plot(ax, x, y, label, dashed=False):
    ax.plot(x, y, "--" if dashed else "-", label=label)


def plot_confusion(reports, path, title="defective vs good"):
    """``reports``: {split name: trainer.metrics.binary_report dict}, one matrix per split."""
    plt = _pyplot()
    items = [(k, r) for k, r in reports.items() if r]
    fig, axes = plt.subplots(1, max(len(items), 1), figsize=(4.2 * max(len(items), 1), 3.8), squeeze=False)
    for ax, (name, rep) in zip(axes[0], items):
        cm = rep["confusion_matrix"]["rows_true_cols_pred"]
        labels = rep["confusion_matrix"]["labels"]
        ax.imshow(cm, cmap="Blues")
        top = max(max(row) for row in cm) or 1
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(cm[i][j]), ha="center", va="center", fontsize=14,
                        color="white" if cm[i][j] > top / 2 else "black")
        ax.set_xticks([0, 1], [f"pred {x}" for x in labels])
        ax.set_yticks([0, 1], [f"true {x}" for x in labels])
        ax.set_title(f"{name}: bal.acc {rep['balanced_accuracy']:.3f}, AUROC {rep['auroc']:.3f}\n"
                     f"(majority baseline {rep['majority_baseline']:.3f}, threshold {rep['threshold']:.3g})",
                     fontsize=9)
    fig.suptitle(title, y=1.03)
    fig.tight_layout()
    return _save(fig, path)
