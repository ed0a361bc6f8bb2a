"""Type accuracy on caught defects: of the defective parts the model rejected, how many it named right.

Only caught defects count: a missed defect has no type on the device's screen, so counting it would
mix the detector's recall into the type head's score. ``edgeinspect bench`` (``accuracy_block``) and
``benchmarks/realdata.py`` both report it from here.
"""
from __future__ import annotations

from trainer.data.run_contract import GOOD


def caught_type_accuracy(types, pred_types, caught, good=GOOD):
    """``{"accuracy", "n", "per_type": {type: {"accuracy", "n"}}}`` over the items whose true type is
    not ``good`` and whose ``caught`` is true, or None when no defect was caught. A predicted type the
    set does not have (e.g. ``unknown``) counts as wrong."""
    hits = {}
    for t, p, c in zip(types, pred_types, caught):
        if t != good and c:
            hits.setdefault(t, []).append(p == t)
    if not hits:
        return None
    every = [h for t in hits for h in hits[t]]
    return {"accuracy": sum(every) / len(every), "n": len(every),
            "per_type": {t: {"accuracy": sum(h) / len(h), "n": len(h)} for t, h in sorted(hits.items())}}
