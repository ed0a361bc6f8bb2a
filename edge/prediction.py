"""What the model says about one image (:class:`Prediction`), the labels file reader and the threshold check."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import ModelError


@dataclass
class Prediction:
    path: str | None
    verdict: str                      # "defective" | "good" | "-" (plain classifier without a "good" label)
    score: float                      # defect probability / normalised anomaly score (threshold applies)
    # Classifier: the type head's label (see defect_type); anomaly with a type head: a defective part's
    # most likely defect type (may be "unknown"), a good part's "good" with type_prob None; anomaly
    # without one: None; plain: the top-1 label.
    defect_type: str | None = None
    type_prob: float | None = None
    latency_ms: float = 0.0           # preprocess + invoke + postprocess
    anomaly_map: np.ndarray | None = field(default=None, repr=False)
    top: list | None = None           # plain classifiers: [(label, prob), ...]
    stages_ms: dict | None = field(default=None, repr=False)  # {"preprocess", "invoke", "postprocess"} ms

    @property
    def defective(self) -> bool:
        return self.verdict == "defective"

    def to_dict(self) -> dict:
        """JSON/CSV record (no map)."""
        d = {"path": self.path, "verdict": self.verdict, "score": _round(self.score),
             "defect_type": self.defect_type, "type_prob": _round(self.type_prob),
             "latency_ms": round(float(self.latency_ms), 3), "error": None}
        if self.top is not None:
            d["top"] = [[label, _round(p)] for label, p in self.top]
        return d


def _round(x, nd=6):
    return None if x is None else round(float(x), nd)


def read_labels(labels):
    """A labels file (one per line; ``N label`` / ``N: label`` lines also accepted) or a list."""
    if labels is None:
        return None
    if isinstance(labels, (list, tuple)):
        return [str(x) for x in labels]
    path = Path(labels)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read labels file ({getattr(exc, 'strerror', None) or exc}); "
                         "pass a text file with one label per line") from None
    out = [ln.strip() for ln in lines]
    while out and not out[-1]:
        out.pop()
    numbered = [ln.split(None, 1) for ln in out]
    if out and all(len(p) == 2 and p[0].rstrip(":").isdigit() for p in numbered):
        table = {int(p[0].rstrip(":")): p[1].strip() for p in numbered}
        out = [table.get(i, str(i)) for i in range(max(table) + 1)]
    if not out:
        raise ModelError(f"{path}: labels file is empty; pass a text file with one label per line")
    return out


def check_threshold(value, where):
    """A decision threshold must be a finite number in [0, 1]: scores are probabilities, and nan or inf
    would pass (or fail) every part without a word. ``where`` names the source (``--threshold``, a file)."""
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ModelError(f"{where}: threshold {value!r} is not a number; use a value between 0 and 1") from None
    if math.isnan(t) or not 0.0 <= t <= 1.0:
        raise ModelError(f"{where}: threshold {value!r} is outside 0..1; use a value between 0 and 1 "
                         "(scores are probabilities)")
    return t


def defect_type(labels, probs, defective):
    """(label, probability) of the type head. A defective verdict names the most likely *defect* type
    (or ``unknown`` when the head has none): "defective, type good" would contradict itself."""
    j = int(np.argmax(probs))
    if not defective or labels[j] != "good":
        return labels[j], float(probs[j])
    others = [i for i, name in enumerate(labels) if name != "good"]
    if not others:
        return "unknown", None
    k = max(others, key=lambda i: probs[i])
    return labels[k], float(probs[k])
