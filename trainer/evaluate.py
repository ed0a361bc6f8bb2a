"""The evaluation report both trainers print and save: val and held-out test at the saved model's 0.5.

The classifier's :func:`evaluate` and the anomaly trainer (trainer/anomaly/fit.py) share the pieces
below, so the two modes report the same numbers the same way.
"""
from __future__ import annotations

import numpy as np

from trainer.data.run_contract import GOOD
from trainer.threshold import DECISION, logit, sigmoid

NO_TEST = "test: the split has no test images; nothing was measured on held-out data"


def per_type_line(per_type) -> str:
    """``  per type: good false alarms 0.05 (n=20), crack recall 0.90 (n=10), ...``"""
    return "  per type: " + ", ".join(
        f"{t} {'false alarms' if t == GOOD else 'recall'} {v.get('recall', v.get('false_alarm_rate')):.2f} (n={v['n']})"
        for t, v in per_type.items())


def shout(warnings, echo):
    """Every warning in red: a number without its caveat must not scroll past unnoticed."""
    import click

    for w in warnings:
        echo(click.style(f"WARNING: {w}", fg="red", bold=True))


def split_warnings(val_rep, test_rep, thr_info):
    warnings = [f"val: {w}" for w in val_rep["warnings"]]
    if test_rep is not None:
        warnings += [f"test: {w}" for w in test_rep["warnings"]]
    if "warning" in thr_info:
        warnings.append(f"threshold: {thr_info['warning']}")
    return warnings


def evaluate_classifier(cfg, files, labels, y_def, y_type, scores, types_pred, echo, thr_info):
    """Reports of the saved model, whose scores are already shifted so that the decision is at 0.5."""
    from trainer.metrics import binary_report, format_report, per_type_recall

    thr = DECISION
    where = ""
    if thr_info.get("placed_in_gap"):
        lo, hi = thr_info["gap"]
        ma, mb = thr_info["margin_logit"]
        where = f", in the val gap {lo:.4f}..{hi:.4f}: {ma:.2f} / {mb:.2f} logit from its ends"
    echo(f"threshold {thr_info.get('raw_threshold', thr):.4f} -> 0.5 inside the model ({cfg.threshold_policy} on val: "
         f"recall {thr_info.get('achieved_recall', float('nan')):.3f}, "
         f"false alarms {thr_info.get('achieved_fpr', float('nan')):.3f}{where})")
    if "test" in scores and "policy_threshold" in thr_info:
        # The policy's own threshold, on the saved (shifted) scale, to show what the move bought on test.
        at_policy = float(sigmoid(logit(thr_info["policy_threshold"]) - logit(thr_info["raw_threshold"])))
        plain = binary_report(y_def["test"], scores["test"], at_policy)
        thr_info["test_balanced_accuracy_at_policy_threshold"] = plain["balanced_accuracy"]
    val_rep = binary_report(y_def["val"], scores["val"], thr)
    echo(format_report(val_rep, "val (threshold chosen here; optimistic):"))
    test_rep, per_type, type_acc = None, {}, None
    if "test" in scores:
        test_rep = binary_report(y_def["test"], scores["test"], thr, ci=True, n_boot=500, seed=cfg.seed)
        echo(format_report(test_rep, "test (held out):"))
        if "auroc_ci95" in test_rep:
            lo, hi = test_rep["auroc_ci95"]
            blo, bhi = test_rep["balanced_accuracy_ci95"]
            echo(f"  95% bootstrap CI: AUROC [{lo:.3f}, {hi:.3f}], balanced acc [{blo:.3f}, {bhi:.3f}]")
        per_type = per_type_recall([f["type"] for f in files["test"]], scores["test"], thr)
        echo(per_type_line(per_type))
        known = (y_def["test"] == 1) & (y_type["test"] > 0)
        if known.any():
            type_acc = float(np.mean(types_pred["test"][known] == y_type["test"][known]))
            echo(f"  defect-type accuracy on test defects of known types: {type_acc:.3f} (n={int(known.sum())}, "
                 f"chance {1 / max(len(labels) - 1, 1):.3f})")
    warnings = split_warnings(val_rep, test_rep, thr_info)
    if test_rep is None:
        warnings.append(NO_TEST)
    shout(warnings, echo)
    return {"threshold": float(thr), "raw_threshold": thr_info.get("raw_threshold"),
            "threshold_policy": cfg.threshold_policy, "threshold_info": thr_info,
            "val": val_rep, "test": test_rep, "per_type_test": per_type, "type_accuracy_test": type_acc,
            "labels": labels, "warnings": warnings}
