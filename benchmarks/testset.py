"""The run's held-out test split, decoded once for every variant (so all see the same pixels)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.common import BenchError
from trainer.data.run_contract import resolve_root, run_manifest, split_items


@dataclass
class TestSet:
    root: Path
    paths: list
    labels: np.ndarray          # 1 = defective
    types: list                 # "good" or the defect type
    images: list = field(default_factory=list)   # decoded RGB uint8 at the model's input size
    size: tuple = (224, 224)
    files: list = field(default_factory=list)    # the manifest entries (``mask`` where a defect has one)


def load_test_set(run_dir, size, limit=None) -> TestSet:
    """The manifest's ``test`` split (read and checked by trainer.data.run_contract), decoded through
    ``edge.imageio``."""
    from edge.imageio import load_image

    run_dir = Path(run_dir)
    manifest = run_manifest(run_dir)
    root = resolve_root(manifest, run_dir / "manifest.json")
    files = split_items(manifest, "test", root)
    if not files:
        raise BenchError(f"{run_dir / 'manifest.json'}: the manifest has no 'test' images; split with a test part")
    if limit:
        files = files[: int(limit)]
    ts = TestSet(root=root.resolve(), paths=[f["abspath"] for f in files],
                 labels=np.array([int(f["label"]) for f in files]), types=[f.get("type", "?") for f in files],
                 size=tuple(size), files=files)
    ts.images = [load_image(p, ts.size) for p in ts.paths]
    return ts
