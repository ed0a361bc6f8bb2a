"""Honest binary metrics: never a number without AUROC, balanced accuracy and the baseline.

Used by the trainer (threshold choice, metrics.json), the exporter (parity) and
the benchmarks, so every stage reports the same quantities the same way.
Label convention: 1 = defective (positive), 0 = good; higher score = more defective.
"""
from __future__ import annotations

import math

import numpy as np

from trainer.data.run_contract import GOOD

POLICIES = ("max-f1", "recall@0.99", "fpr@0.01")

# How loud a warning is, decided where it is raised and carried with it as data, so a report colours it
# from this field and rewording a message can never change its colour.
SEVERE = "severe"    # the numbers beside it are misleading or something regressed (reports show it red)
WARNING = "warning"  # worth reading before quoting a number (amber)
NOTE = "note"        # context, not a problem (grey)
SEVERITIES = (SEVERE, WARNING, NOTE)


def alert(kind, message, severity=SEVERE) -> dict:
    """One structured warning: ``kind`` names the check (stable, for code), ``message`` is for people."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; choose one of {', '.join(SEVERITIES)}")
    return {"kind": kind, "severity": severity, "message": message}


def _as_arrays(y_true, scores):
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    return y, s


def auroc(y_true, scores):
    """AUROC, or NaN when only one class is present (undefined, not 0.5).

    The rank-sum (Mann-Whitney) formula with average ranks for ties: the same value as
    scikit-learn's ``roc_auc_score`` (tests/unit/test_bench_metrics.py), many times faster,
    which matters for the 500-1000 bootstrap resamples behind every interval.
    """
    y, s = _as_arrays(y_true, scores)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based, ties share their average rank
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def balanced_accuracy(y_true, pred):
    """Mean of the recall on defective and on good parts (the one present, if only one is)."""
    y = np.asarray(y_true).astype(int).ravel()
    pred = np.asarray(pred).astype(bool).ravel()
    recalls = [np.mean(pred[y == 1]) if (y == 1).any() else np.nan, np.mean(~pred[y == 0]) if (y == 0).any() else np.nan]
    return float(np.nanmean(recalls)) if len(y) else float("nan")


def per_type_recall(types, scores, threshold, good=GOOD) -> dict:
    """Per type at ``threshold``: the fraction caught (``recall``), and for good parts the ``false_alarm_rate``."""
    types = np.asarray(list(types), dtype=object)
    hit = np.asarray(scores, dtype=np.float64).ravel() >= threshold
    out = {}
    for t in sorted(set(types.tolist())):
        idx = types == t
        out[t] = {"n": int(idx.sum()), ("false_alarm_rate" if t == good else "recall"): float(hit[idx].mean())}
    return out


def choose_threshold(y_true, scores, policy="recall@0.99"):
    """Decision threshold (predict defective when score >= t) for a policy.

    - ``max-f1``: maximise F1 of the defective class;
    - ``recall@R``: the highest threshold that still catches a fraction R of defects;
    - ``fpr@F``: the lowest threshold whose false-alarm rate on good parts is <= F.
    Returns (threshold, info dict). Without both classes, falls back to 0.5 and says so.
    """
    y, s = _as_arrays(y_true, scores)
    info = {"policy": policy}
    if len(np.unique(y)) < 2:
        info["warning"] = "validation split lacks a class; threshold left at 0.5"
        return 0.5, info
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    if policy == "max-f1":
        from sklearn.metrics import precision_recall_curve

        p, r, t = precision_recall_curve(y, s)
        f1 = 2 * p[:-1] * r[:-1] / np.maximum(p[:-1] + r[:-1], 1e-12)
        i = int(np.argmax(f1))
        thr = float(t[i])
    elif policy.startswith("recall@"):
        target = float(policy.split("@", 1)[1])
        # Keep at least ceil(target * n_pos) positives at or above the threshold.
        k = max(1, math.ceil(target * len(pos)))
        thr = float(pos[len(pos) - k])
    elif policy.startswith("fpr@"):
        target = float(policy.split("@", 1)[1])
        allowed = int(math.floor(target * len(neg)))
        # Threshold just above the (allowed+1)-th highest good score.
        idx = len(neg) - allowed - 1
        thr = float(np.nextafter(neg[idx], np.inf)) if idx >= 0 else float(neg[0])
    else:
        raise ValueError(f"unknown threshold policy {policy!r}; choose one of {', '.join(POLICIES)} (R, F in 0..1)")
    info.update(achieved_recall=float(np.mean(pos >= thr)), achieved_fpr=float(np.mean(neg >= thr)))
    return thr, info


def bootstrap_ci(y_true, scores, fn, n=1000, seed=0, alpha=0.05):
    """Percentile bootstrap interval of ``fn(y, s)``; resamples lacking a class are skipped."""
    y, s = _as_arrays(y_true, scores)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        yy = y[idx]
        if yy.min() == yy.max():
            continue
        v = fn(yy, s[idx])
        if not math.isnan(v):
            vals.append(v)
    if not vals:
        return [float("nan"), float("nan")]
    return [float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2))]


def balanced_accuracy_at(threshold):
    """``fn(y, s)``: balanced accuracy of calling ``s >= threshold`` defective (for :func:`bootstrap_ci`)."""
    def fn(y, s):
        return balanced_accuracy(y, np.asarray(s) >= threshold)

    return fn


def binary_report(y_true, scores, threshold, ci=False, n_boot=1000, seed=0):
    """Everything a reader needs to judge a defect detector at ``threshold``.

    The ``warnings`` list is the honesty check: a single-class prediction, a
    split without defects, or an accuracy no better than always guessing the
    majority class are all called out. ``alerts`` holds the same warnings as
    ``{"kind", "severity", "message"}`` (see ``alert``) for code that must tell them apart.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y, s = _as_arrays(y_true, scores)
    pred = (s >= threshold).astype(int)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    majority = max(n_pos, n_neg) / max(len(y), 1)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    p, r, f, sup = precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    acc = float((pred == y).mean()) if len(y) else float("nan")
    rep = {
        "n": int(len(y)), "n_defective": n_pos, "n_good": n_neg,
        "threshold": float(threshold),
        "auroc": auroc(y, s),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "accuracy": acc,
        "majority_baseline": float(majority),
        "majority_class": "defective" if n_pos > n_neg else "good",
        "precision": {"good": float(p[0]), "defective": float(p[1])},
        "recall": {"good": float(r[0]), "defective": float(r[1])},
        "f1": {"good": float(f[0]), "defective": float(f[1])},
        "confusion_matrix": {"labels": ["good", "defective"], "rows_true_cols_pred": cm.tolist()},
        "predicted_defective_fraction": float(pred.mean()) if len(y) else float("nan"),
        "warnings": [],
        "alerts": [],
    }
    alerts = rep["alerts"]
    if n_pos == 0:
        alerts.append(alert("no_defective", "no defective image in this split: recall and AUROC cannot be measured"))
    if n_neg == 0:
        alerts.append(alert("no_good", "no good image in this split: false-alarm rate and AUROC cannot be measured"))
    if len(y) and len(np.unique(pred)) == 1:
        cls = "defective" if pred[0] == 1 else "good"
        alerts.append(alert("single_class", f"SINGLE-CLASS MODEL: it calls every image {cls}; accuracy {acc:.3f} "
                                            f"equals the majority baseline {majority:.3f} at best and means nothing"))
    elif len(y) and n_pos and n_neg and acc <= majority + 1e-9:
        alerts.append(alert("no_better_than_baseline", f"accuracy {acc:.3f} is no better than always predicting "
                                                       f"the majority class ({majority:.3f})"))
    # The plain-text list stays for logs and metrics.json readers; colour comes from "alerts".
    rep["warnings"] = [a["message"] for a in alerts]
    if ci:
        rep["auroc_ci95"] = bootstrap_ci(y, s, auroc, n=n_boot, seed=seed)
        rep["balanced_accuracy_ci95"] = bootstrap_ci(y, s, balanced_accuracy_at(threshold), n=n_boot, seed=seed)
    return rep


def format_report(rep, title="") -> str:
    """Short text block that always shows AUROC, balanced accuracy and the baseline together."""
    lines = []
    if title:
        lines.append(title)
    lines.append(
        f"  AUROC {rep['auroc']:.3f} | balanced acc {rep['balanced_accuracy']:.3f} | accuracy {rep['accuracy']:.3f} "
        f"(majority baseline {rep['majority_baseline']:.3f}, always '{rep['majority_class']}') | "
        f"recall(defective) {rep['recall']['defective']:.3f} | n={rep['n']} ({rep['n_defective']} defective)"
    )
    cm = rep["confusion_matrix"]["rows_true_cols_pred"]
    lines.append(f"  confusion [true good: {cm[0][0]} ok, {cm[0][1]} false alarm] [true defective: {cm[1][0]} missed, {cm[1][1]} caught]")
    for w in rep["warnings"]:
        lines.append(f"  WARNING: {w}")
    return "\n".join(lines)


def type_accuracy_on_caught(true_types, pred_types, caught, good=GOOD) -> dict:
    """How often a caught defect is named right: {"accuracy", "n", "per_type": {t: {"accuracy", "n"}}}.

    Only defects the model called defective count (a missed defect has no type to get right; recall
    says how many were missed), and a predicted ``unknown`` counts as wrong.
    """
    t = np.asarray(true_types, dtype=object)
    p = np.asarray(pred_types, dtype=object)
    keep = (t != good) & np.asarray(caught, bool)
    per = {}
    for name in sorted(set(t[keep].tolist())):
        m = keep & (t == name)
        per[name] = {"accuracy": float(np.mean(p[m] == name)), "n": int(m.sum())}
    n = int(keep.sum())
    return {"accuracy": float(np.mean(p[keep] == t[keep])) if n else float("nan"), "n": n, "per_type": per}
