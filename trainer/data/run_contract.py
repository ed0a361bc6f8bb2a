"""THE run-folder and split-manifest contract (ARCHITECTURE.md): the one module that writes and reads them.

Every stage (train, export, bench) reads a run and its split through here, so a moved dataset,
an edited manifest or a half-written run fails the same way everywhere: one line naming the file
and the fix, never a silent guess (no fallback to the working directory).

* Manifest: ``{"protocol", "seed", "root", "created", "params", "classes", "sha256", "files": [{"path",
  "label", "type", "split", "sha256"}]}``; its ``sha256`` covers the sorted (path, file sha256, label,
  type, split) list, so it names the data and the split, not the moment it was made.
* Run folder: ``run.json`` (written last: its presence marks a complete run), ``config.json``,
  ``manifest.json``, ``metrics.json``, ``preprocess.json``, ``labels.txt``, ``model.keras``,
  ``golden.json`` (the run's golden set: images by hash with the verdicts the model gave them,
  the regression gate of ``export`` for runs updated from it) and, for anomaly runs,
  ``update_cache.npz`` (what ``train --update`` needs instead of the old images' features).
  A run made by ``train --update`` has ``run.json["lineage"]``: ``{"parent": <run folder>,
  "parent_name", "added": [{"file", "sha256", "label", "type"}]}``.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge import __version__
from edge.atomic import atomic_write_json, atomic_write_text, read_json, utc_stamp
from edge.errors import DataError, EdgeInspectError
from edge.preprocess import as_hw, describe

GOOD = "good"  # the class name of defect-free parts: folder name, manifest type, label 0
SPLITS = ("train", "val", "test")
MANIFEST_KEYS = ("protocol", "seed", "root", "created", "params", "classes", "sha256", "files")
RUN_KEYS = ("task", "labels", "input_size", "threshold")
TASKS = ("classifier", "anomaly")
GOLDEN_FILE = "golden.json"
UPDATE_CACHE = "update_cache.npz"
GOLDEN_KEYS = ("split", "threshold", "images")
GOLDEN_IMAGE_KEYS = ("file", "sha256", "label", "type", "score", "verdict")


class RunError(EdgeInspectError):
    pass


# ------------------------------------------------------------------ manifest
def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_hash(files) -> str:
    rows = sorted([f["path"], f["sha256"], int(f["label"]), f["type"], f["split"]] for f in files)
    return hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()


def build_manifest(root, protocol, seed, params, files) -> dict:
    """The manifest dict for ``files`` (entries relative to ``root``; a missing file ``sha256`` is computed)."""
    root = Path(root)
    files = [f if "sha256" in f else dict(f, sha256=file_sha256(root / f["path"])) for f in files]
    present = {f["type"] for f in files}
    return {
        "protocol": protocol,
        "seed": int(seed),
        "root": str(root.resolve()),
        "created": utc_stamp(),
        "params": params,
        "classes": [GOOD] + sorted(t for t in present if t != GOOD),
        "sha256": manifest_hash(files),
        "files": files,
    }


def save_manifest(manifest: dict, path) -> Path:
    atomic_write_json(path, manifest)
    return Path(path)


def load_manifest(path) -> dict:
    """Read and check a manifest (keys present, hash matches its file list)."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: split manifest not found (make one with: edgeinspect data split ROOT --out {path})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable split manifest ({exc}); re-run edgeinspect data split") from None
    missing = [k for k in MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise DataError(f"{path}: split manifest lacks {', '.join(missing)}; re-run edgeinspect data split")
    if manifest_hash(manifest["files"]) != manifest["sha256"]:
        raise DataError(f"{path}: split manifest was edited (sha256 does not match its file list); re-run edgeinspect data split")
    return manifest


def run_manifest(run_dir) -> dict:
    """The checked ``manifest.json`` of a run folder."""
    p = Path(run_dir) / "manifest.json"
    if not p.is_file():
        raise RunError(f"{run_dir}: run folder has no manifest.json (its images are listed there); re-run training")
    return load_manifest(p)


def resolve_root(manifest: dict, source, data=None) -> Path:
    """The manifest's dataset folder: ``data`` when given (the dataset was moved), else its ``root``.

    A relative root is relative to ``source`` (the manifest file's folder). A folder that is not
    there is an error: images found elsewhere would not be the ones the manifest's hashes name.
    """
    if data is not None:
        root = Path(data)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found (given for manifest {source})")
        return root
    root = Path(manifest["root"])
    if not root.is_absolute():
        root = Path(source).parent / root
    if not root.is_dir():
        raise DataError(f"{source}: dataset root {root} not found (moved?); move the dataset back there "
                        "or re-train with --data NEW_ROOT --manifest MANIFEST")
    return root


def split_items(manifest: dict, split, root) -> list:
    """File dicts of one split (copies), each with ``abspath`` under ``root`` (see :func:`resolve_root`)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return [dict(f, abspath=str(Path(root) / f["path"])) for f in manifest["files"] if f["split"] == split]


def run_split(run_dir, split) -> list:
    """``split``'s file dicts of a run folder's manifest, with ``abspath`` (the root checked)."""
    manifest = run_manifest(run_dir)
    return split_items(manifest, split, resolve_root(manifest, Path(run_dir) / "manifest.json"))


# ------------------------------------------------------------------ run folder
def write_run_files(run_dir, *, cfg, manifest, task, labels, input_size, threshold, threshold_policy, metrics,
                    extra=None, golden=None, lineage=None):
    """Write run.json, config.json, manifest.json, metrics.json, preprocess.json, labels.txt (and golden.json,
    run.json's ``lineage``)."""
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
        "created": utc_stamp(),
        "edgeinspect_version": __version__,
    }
    if extra:
        info.update(extra)
    if lineage:
        info["lineage"] = lineage
    cfg.save(run_dir / "config.json")
    if golden is not None:
        atomic_write_json(run_dir / GOLDEN_FILE, golden)
    atomic_write_json(run_dir / "manifest.json", manifest)
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_json(run_dir / "preprocess.json", describe((h, w)))
    atomic_write_text(run_dir / "labels.txt", "\n".join(labels) + "\n")
    atomic_write_json(run_dir / "run.json", info)  # last: its presence marks a complete run
    return info


def read_run(run_dir, need_model=True) -> dict:
    """``run.json`` of a finished run, its keys checked; ``need_model``: model.keras must be there too."""
    run_dir = Path(run_dir)
    info = read_json(run_dir / "run.json", RunError, fix="re-run training",
                     missing="not a finished edgeinspect run (no run.json); train one with 'edgeinspect train'")
    if need_model and not (run_dir / "model.keras").is_file():
        raise RunError(f"{run_dir}: run folder has no model.keras; re-run training")
    missing = [k for k in RUN_KEYS if not isinstance(info, dict) or k not in info]
    if missing:
        raise RunError(f"{run_dir}/run.json lacks {', '.join(map(repr, missing))}; re-run training")
    if info["task"] not in TASKS:
        raise RunError(f"{run_dir}/run.json: unknown task {info['task']!r}; expected one of {', '.join(TASKS)}")
    return info


# ------------------------------------------------------------------ golden set and lineage
def write_update_cache(run_dir, arrays: dict) -> Path:
    """``RUN/update_cache.npz`` (what ``train --update`` needs instead of the old images), atomically."""
    import io

    import numpy as np

    from edge.atomic import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    out = Path(run_dir) / UPDATE_CACHE
    atomic_write_bytes(out, buf.getvalue())
    return out


def read_update_cache(run_dir, keys=None) -> dict:
    """The arrays of ``RUN/update_cache.npz`` (``keys``: these, else all); one-line errors."""
    import numpy as np

    p = Path(run_dir) / UPDATE_CACHE
    if not p.is_file():
        raise RunError(f"{p}: not found; this run was trained before updates were possible, re-train it "
                       "once with 'edgeinspect train' and update that run")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in (keys or z.files)}
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(f"{p}: unreadable update cache ({exc}); re-train the run") from None


def read_golden(run_dir) -> dict:
    """``golden.json`` of a run, its keys checked."""
    run_dir = Path(run_dir)
    golden = read_json(run_dir / GOLDEN_FILE, RunError, fix="re-run training",
                       missing="run has no golden set (trained before golden sets were kept); re-train it")
    missing = [k for k in GOLDEN_KEYS if not isinstance(golden, dict) or k not in golden]
    bad = [i for i, g in enumerate(golden.get("images", []) if isinstance(golden, dict) else [])
           if not isinstance(g, dict) or any(k not in g for k in GOLDEN_IMAGE_KEYS)]
    if missing or bad:
        raise RunError(f"{run_dir / GOLDEN_FILE}: golden set lacks {', '.join(missing) or f'keys in image(s) {bad[:5]}'}; "
                       "re-run training")
    return golden


def check_hashed_file(entry: dict, where) -> str:
    """The path of a golden or added image after checking that it is still the file its sha256 names."""
    path = Path(entry["file"])
    if not path.is_file():
        raise DataError(f"{path}: image listed in {where} is gone; put it back (it is compared by hash)")
    if file_sha256(path) != entry["sha256"]:
        raise DataError(f"{path}: image listed in {where} was changed (sha256 differs); restore it")
    return str(path)


def make_lineage(parent_dir, parent_info: dict, added: list) -> dict:
    """``run.json["lineage"]`` of a run updated from ``parent_dir`` with ``added`` image dicts."""
    return {"parent": str(Path(parent_dir).resolve()), "parent_name": parent_info.get("name"),
            "parent_manifest_sha256": parent_info.get("manifest_sha256"),
            "added": [{k: a[k] for k in ("file", "sha256", "label", "type")} for a in added]}
