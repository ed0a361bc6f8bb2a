"""Everything a run folder holds besides the model, written the same way by both modes.

Export and the benchmarks read ``run.json`` (see ARCHITECTURE.md) and never
guess: one file says what task, labels, input size and threshold the model has.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from edge import __version__
from edge.atomic import atomic_write_json, atomic_write_text, read_json
from edge.errors import EdgeInspectError
from edge.preprocess import as_hw, describe


class RunError(EdgeInspectError):
    pass


def write_run_files(run_dir, *, cfg, manifest, task, labels, input_size, threshold, threshold_policy, metrics,
                    extra=None):
    """Write run.json, config.json, manifest.json, metrics.json, preprocess.json, labels.txt."""
    run_dir = Path(run_dir)
    h, w = as_hw(input_size)
    info = {
        "task": task,
        "labels": list(labels),
        "input_size": [h, w],
        "alpha": getattr(cfg, "alpha", None),
        "threshold": float(threshold),
        "threshold_policy": threshold_policy,
        "manifest_sha256": manifest.get("sha256"),
        "name": run_dir.name,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "edgeinspect_version": __version__,
    }
    if extra:
        info.update(extra)
    cfg.save(run_dir / "config.json")
    atomic_write_json(run_dir / "manifest.json", manifest)
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_json(run_dir / "preprocess.json", describe((h, w)))
    atomic_write_text(run_dir / "labels.txt", "\n".join(labels) + "\n")
    atomic_write_json(run_dir / "run.json", info)  # last: its presence marks a complete run
    return info


def read_run(run_dir) -> dict:
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json", RunError, fix="re-run training",
                     missing="not a finished edgeinspect run (no run.json); train one with 'edgeinspect train'")
    if not (run_dir / "model.keras").is_file():
        raise RunError(f"{run_dir}: run folder has no model.keras; re-run training")
    return info
