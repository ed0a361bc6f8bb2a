"""Each run's golden set: a few images it decides right, kept by hash with the verdicts it gave them.

``edgeinspect export`` of a run updated from this one (``train --update``) runs the new files on these
images and refuses (exit 2) when a verdict flips: a re-teach from the field must not undo what the old
model got right. The images are the held-out split's (never the ones fitted on), per class spread over
the defect types and over confidence (evenly spaced ranks of the margin), so the set holds near cases
that a bad update moves first, not only the easy ones.
"""
from __future__ import annotations

import numpy as np

from trainer.data.run_contract import GOOD

PER_CLASS = 8


def choose_golden(files, scores, threshold=0.5, per_class=PER_CLASS, split="test") -> dict:
    """golden.json for ``files`` (split dicts with ``abspath``/``sha256``) scored ``scores`` by the run."""
    scores = np.asarray(scores, np.float64).ravel()
    chosen = []
    for label in (0, 1):
        right = [i for i, f in enumerate(files) if int(f["label"]) == label and (scores[i] >= threshold) == bool(label)]
        by_type = {}
        for i in sorted(right, key=lambda i: abs(scores[i] - threshold)):
            by_type.setdefault(files[i]["type"], []).append(i)
        picked = []
        for members in by_type.values():  # evenly spaced confidence ranks inside each type
            want = max(1, round(per_class * len(members) / max(len(right), 1)))
            picked += [members[j] for j in np.unique(np.linspace(0, len(members) - 1, min(want, len(members))).round().astype(int))]
        picked = sorted(picked, key=lambda i: abs(scores[i] - threshold))
        if len(picked) > per_class:
            picked = [picked[j] for j in np.unique(np.linspace(0, len(picked) - 1, per_class).round().astype(int))]
        chosen += picked
    images = [{"file": files[i]["abspath"], "path": files[i]["path"], "sha256": files[i]["sha256"],
               "label": int(files[i]["label"]), "type": files[i].get("type", GOOD), "score": float(scores[i]),
               "verdict": "defective" if scores[i] >= threshold else "good"} for i in chosen]
    return {"split": split, "threshold": float(threshold), "per_class": per_class,
            "policy": "right verdicts of the held-out split, per class spread over types and confidence",
            "images": images}


def golden_for(files: dict, scores: dict, threshold=0.5) -> dict:
    """The golden set from the test split's scores (val when there is no test split)."""
    for split in ("test", "val"):
        if files.get(split) and split in scores and len(scores[split]):
            return choose_golden(files[split], scores[split], threshold, split=split)
    return {"split": None, "threshold": float(threshold), "per_class": PER_CLASS, "images": []}
