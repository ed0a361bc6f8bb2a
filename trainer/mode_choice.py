"""``--mode auto`` (the default): the model the split's labelled defects call for, and why.

- no labelled defect (a good-only split): ``anomaly``, the only choice that learns from good parts alone;
- one: ``anomaly`` too; a single defect cannot be cross-validated, so it would only decorate a threshold;
- two or more: ``combined``, the good-only evidence plus a probe and a stack learnt from the defects
  (trainer/anomaly/stack.py). It uses the good images the classifier ignores; on the real castings it
  measured at or above the fine-tuned classifier at 10 and 50 defects (README, "A handful of defects").

The choice and its reason are printed and saved in run.json (``mode_choice``).
"""
from __future__ import annotations

MIN_COMBINED = 2


def choose_mode(files) -> tuple[str, str]:
    """(mode, why) from the split's files ({"train": [...], "val": [...], ...})."""
    fit = [f for s in ("train", "val") for f in files.get(s, [])]
    n_def = sum(1 for f in fit if f["label"] == 1)
    n_good = len(fit) - n_def
    types = sorted({f["type"] for f in fit if f["label"] == 1})
    if n_def == 0:
        return "anomaly", f"the split's train/val hold {n_good} good and no defective images: good images only"
    if n_def < MIN_COMBINED:
        return "anomaly", (f"the split's train/val hold {n_good} good and {n_def} defective image: too few to "
                           f"cross-validate a supervised head ({MIN_COMBINED} needed); good images only")
    return "combined", (f"the split's train/val hold {n_good} good and {n_def} defective images "
                        f"({len(types)} type{'s' if len(types) != 1 else ''}): good-only evidence + a head "
                        "learnt from the defects")
