"""``edgeinspect train --update RUN --add-good DIR [--add-defects DIR]``: a new numbered run from field images.

The added folders may be the ones ``watch --rejects DIR`` lays out for the operator: ``DIR`` itself
(its ``confirmed_good/`` and ``confirmed_defect/`` are used), or those two folders directly. A defect
folder's sub-folders name the defect type; images directly inside it are of type ``defect``.
Every added file goes into the new run's lineage (``run.json``) with its sha256.
"""
from __future__ import annotations

from pathlib import Path

from edge.errors import DataError
from edge.watch.sinks.rejects import REVIEW_FOLDERS

CONFIRMED_GOOD, CONFIRMED_DEFECT = REVIEW_FOLDERS  # the review folders of watch --rejects
UNTYPED = "defect"


def _images(folder: Path) -> list:
    from edge.imageio import is_image_path

    skip = ("_overlay.png",)  # heat maps the reject store writes beside nothing we learn from
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p) and not p.name.startswith(".")
                  and not p.name.endswith(skip) and "overlays" not in p.relative_to(folder).parts[:-1])


def _folder(path, sub, option) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise DataError(f"{p}: {option} folder not found")
    return p / sub if (p / sub).is_dir() else p


def collect_added(add_good=None, add_defects=None) -> list:
    """[{"file", "abspath", "sha256", "label", "type", "path"}] of the added images (good first)."""
    from trainer.data.run_contract import GOOD, file_sha256

    out = []
    if add_good:
        folder = _folder(add_good, CONFIRMED_GOOD, "--add-good")
        imgs = _images(folder)
        if not imgs:
            raise DataError(f"{folder}: --add-good folder has no images; move confirmed good parts there")
        out += [(p, 0, GOOD) for p in imgs]
    if add_defects:
        folder = _folder(add_defects, CONFIRMED_DEFECT, "--add-defects")
        imgs = _images(folder)
        if not imgs:
            raise DataError(f"{folder}: --add-defects folder has no images; move confirmed defects into "
                            f"{folder}/<type>/")
        for p in imgs:
            rel = p.relative_to(folder).parts
            kind = rel[0] if len(rel) > 1 else UNTYPED
            if kind == GOOD:
                raise DataError(f"{p}: a defect folder named {GOOD!r}; put good parts under --add-good instead")
            out.append((p, 1, kind))
    return [{"file": str(p.resolve()), "abspath": str(p.resolve()), "path": p.name, "sha256": file_sha256(p),
             "label": label, "type": kind} for p, label, kind in out]


def update_run(run, add_good=None, add_defects=None, echo=print, seed=None) -> Path:
    """Dispatch on the parent's task; returns the new run folder."""
    from trainer.data.run_contract import read_run

    if not add_good and not add_defects:
        raise DataError("--update needs --add-good DIR and/or --add-defects DIR (the images to teach)")
    info = read_run(run)
    if info.get("mode") == "combined":
        # its stack and threshold are cross-validated over every image: a refit is a new training run
        raise DataError(f"{run}: --update re-teaches anomaly and classifier runs; a combined run is retrained: add the "
                        f"images to the dataset and run edgeinspect train --config {run}/config.json")
    added = collect_added(add_good, add_defects)
    n_good = sum(1 for a in added if a["label"] == 0)
    echo(f"added: {n_good} good, {len(added) - n_good} defective image(s)")
    if info["task"] == "anomaly":
        from trainer.anomaly.update import update_anomaly

        return update_anomaly(run, info, added, echo, seed=seed)
    from trainer.classifier_update import update_classifier

    return update_classifier(run, info, added, echo, seed=seed)
