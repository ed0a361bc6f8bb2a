"""The regression gate of an updated run: do the new files still decide the parent's golden set the same way?

``train --update`` makes a run with a ``lineage`` (trainer/data/run_contract.py). Its export runs every
new variant on the parent's golden set (images by hash, with the verdicts the parent gave them) and on
the images the update added, and compares with the parent's file of the same variant (its own
threshold) when the parent was exported, else with the verdicts stored in ``golden.json``. A golden
verdict that flips is a regression (the CLI exits 2 unless ``--accept-changes``); changed verdicts of
added images are what the update was for and are listed, not refused.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export import calibration, parity
from export import variants as V
from trainer.data.run_contract import check_hashed_file, read_golden


def _verdicts(scores, threshold):
    return np.where(np.asarray(scores) >= float(threshold), "defective", "good")


def compare_with_parent(info, exported: dict, size, accept_changes=False, say=None, max_lines=20) -> dict:
    """The ``regression`` entry of export_report.json; ``exported``: {variant: (bytes, metadata)}."""
    from edge.metadata import read_metadata

    say = say or (lambda *_: None)
    lineage = info["lineage"]
    parent = Path(lineage["parent"])
    golden = read_golden(parent)
    entries = ([dict(g, kind="golden") for g in golden["images"]]
               + [dict(a, kind="added") for a in lineage.get("added", [])])
    paths = [check_hashed_file(e, f"{parent.name}/golden.json" if e["kind"] == "golden" else "run.json lineage")
             for e in entries]
    images = calibration.load_images(paths, size, what="golden and added images")[0] if paths else None
    out = {"parent": str(parent), "parent_name": lineage.get("parent_name"),
           "images": {"golden": len(golden["images"]), "added": len(lineage.get("added", []))},
           "accepted": bool(accept_changes), "variants": {}}
    flipped_golden = set()
    for variant, (data, meta) in exported.items():
        after_s = parity.run_tflite(data, images, meta)["score"] if paths else np.zeros(0)
        after = _verdicts(after_s, meta["threshold"])
        pfile = parent / "export" / V.get(variant).file
        if pfile.is_file():
            before_s = parity.run_tflite(pfile, images, task=info["task"])["score"] if paths else np.zeros(0)
            before = _verdicts(before_s, read_metadata(pfile)["threshold"])
            against = str(pfile)
        else:
            before_s = np.array([e["score"] if e["kind"] == "golden" else np.nan for e in entries], float)
            before = np.array([e["verdict"] if e["kind"] == "golden" else "" for e in entries], object)
            against = f"{parent.name}/golden.json verdicts (Keras; the parent has no {pfile.name})"
        flips = []
        for i, e in enumerate(entries):
            if before[i] and before[i] != after[i]:
                flips.append({"file": paths[i], "kind": e["kind"], "label": int(e["label"]), "type": e["type"],
                              "before": str(before[i]), "after": str(after[i]),
                              "score_before": None if np.isnan(before_s[i]) else float(before_s[i]),
                              "score_after": float(after_s[i])})
        n_golden = sum(f["kind"] == "golden" for f in flips)
        flipped_golden |= {f["file"] for f in flips if f["kind"] == "golden"}
        out["variants"][variant] = {"compared_with": against, "golden_flips": n_golden,
                                    "added_flips": len(flips) - n_golden, "flips": flips}
        say(f"[{variant}] against {against}: {n_golden} golden verdict(s) flipped, "
            f"{len(flips) - n_golden} added image(s) changed")
        for f in flips[:max_lines]:
            say(f"  {f['kind']} {f['file']} ({f['type']}): {f['before']} -> {f['after']} "
                f"(score {'n/a' if f['score_before'] is None else format(f['score_before'], '.3f')} -> "
                f"{f['score_after']:.3f})")
    out["golden_flipped"] = sorted(flipped_golden)
    out["status"] = "GOLDEN_FLIP" if flipped_golden else "OK"
    return out
