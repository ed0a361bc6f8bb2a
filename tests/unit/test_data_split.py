"""Split protocols: disjoint, stratified, deterministic, hashed, and clear when impossible."""
import json
from collections import Counter

import pytest

from edge.errors import DataError
from trainer.data.split import make_split
from trainer.data.run_contract import load_manifest, manifest_hash, save_manifest, split_items

TYPES = ["crack", "cut", "hole", "print"]


def _count(m, split=None):
    return Counter(f["type"] for f in m["files"] if split is None or f["split"] == split)


def _check_common(m, root):
    paths = [f["path"] for f in m["files"]]
    assert len(paths) == len(set(paths)), "a file is in two splits"
    on_disk = {p.relative_to(root).as_posix() for p in root.glob("*/*/*.png") if p.parts[-3] in ("train", "test")}
    assert set(paths) == on_disk, "every image must be in exactly one split"
    assert {f["split"] for f in m["files"]} <= {"train", "val", "test"}
    assert m["classes"] == ["good"] + TYPES
    assert m["sha256"] == manifest_hash(m["files"])
    for f in m["files"]:
        assert f["label"] == int(f["type"] != "good") and len(f["sha256"]) == 64


def test_good_only(tiny_data):
    m = make_split(tiny_data, "good-only", seed=0)
    _check_common(m, tiny_data)
    assert _count(m, "train") == {"good": 24} and _count(m, "val") == {"good": 6}
    assert _count(m, "test") == {"good": 8, **{t: 4 for t in TYPES}}
    assert all(f["path"].startswith("train/good/") for f in m["files"] if f["split"] in ("train", "val"))


def test_supervised_per_type(tiny_data):
    m = make_split(tiny_data, "supervised", seed=0, defects_per_type=2)
    _check_common(m, tiny_data)
    tr, va, te = _count(m, "train"), _count(m, "val"), _count(m, "test")
    for t in TYPES:
        assert tr[t] + va[t] == 2 and te[t] == 2 and tr[t] >= 1
    assert sum(va[t] for t in TYPES) == 2, "20% of 8 defectives, stratified, at least one"
    assert va["good"] == 6 and tr["good"] == 24 and te["good"] == 8
    # Moved defectives come from test/, good train images stay good.
    assert all(f["path"].startswith("test/") for f in m["files"] if f["label"] == 1)


def test_supervised_total_is_dealt_round_robin(tiny_data):
    m = make_split(tiny_data, "supervised", seed=0, defects_total=6)
    moved = Counter(f["type"] for f in m["files"] if f["label"] == 1 and f["split"] != "test")
    assert sorted(moved.values()) == [1, 1, 2, 2] and sum(moved.values()) == 6
    assert any(f["label"] == 1 and f["split"] == "val" for f in m["files"])


def test_kfold_stratified_and_disjoint(tiny_data):
    k = 4
    folds = [make_split(tiny_data, "kfold", seed=0, k=k, fold=i) for i in range(k)]
    for m in folds:
        _check_common(m, tiny_data)
    fold_of = {f["path"]: f["fold"] for f in folds[0]["files"] if "fold" in f}
    assert set(fold_of) == {f["path"] for f in folds[0]["files"] if f["path"].startswith("test/")}
    for i, m in enumerate(folds):
        assert {f["path"]: f["fold"] for f in m["files"] if "fold" in f} == fold_of, "folds must not depend on --fold"
        test = {f["path"] for f in m["files"] if f["split"] == "test"}
        assert test == {p for p, fo in fold_of.items() if fo == i}
        assert _count(m, "test") == {"good": 2, **{t: 1 for t in TYPES}}
        assert any(f["label"] == 1 and f["split"] == "val" for f in m["files"])
    # Every test/* image is tested in exactly one fold.
    tested = Counter(f["path"] for m in folds for f in m["files"] if f["split"] == "test")
    assert set(tested.values()) == {1} and len(tested) == len(fold_of)


def test_deterministic_for_a_seed_and_different_across_seeds(tiny_data):
    a = make_split(tiny_data, "supervised", seed=0, defects_per_type=2)
    b = make_split(tiny_data, "supervised", seed=0, defects_per_type=2)
    c = make_split(tiny_data, "supervised", seed=1, defects_per_type=2)
    assert a["files"] == b["files"] and a["sha256"] == b["sha256"]
    assert a["sha256"] != c["sha256"]
    assert [f["split"] for f in a["files"]] != [f["split"] for f in c["files"]]


def test_manifest_roundtrip_hash_ignores_created_and_detects_edits(tiny_manifest_supervised, tmp_path):
    root, path = tiny_manifest_supervised
    m = load_manifest(path)
    assert set(m) >= {"protocol", "seed", "root", "created", "params", "classes", "sha256", "files"}
    m2 = dict(m, created="1999-01-01T00:00:00Z")
    save_manifest(m2, tmp_path / "m.json")
    assert load_manifest(tmp_path / "m.json")["sha256"] == m["sha256"]
    m2["files"][0] = dict(m2["files"][0], split="test" if m2["files"][0]["split"] != "test" else "train")
    (tmp_path / "edited.json").write_text(json.dumps(m2))
    with pytest.raises(DataError, match="edited"):
        load_manifest(tmp_path / "edited.json")
    with pytest.raises(DataError, match="not found"):
        load_manifest(tmp_path / "nope.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(DataError, match="not a readable split manifest"):
        load_manifest(tmp_path / "junk.json")
    val = split_items(m, "val", root)
    assert val and all(f["split"] == "val" and (root / f["path"]).samefile(f["abspath"]) for f in val)
    with pytest.raises(ValueError):
        split_items(m, "holdout", root)


def test_exclude_leaves_files_out_and_records_them(tiny_data):
    bad = tiny_data / "test" / "cut" / "001.png"
    m = make_split(tiny_data, "good-only", exclude=[bad])
    assert "test/cut/001.png" not in {f["path"] for f in m["files"]}
    assert m["params"]["excluded"] == ["test/cut/001.png"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(protocol="supervised", defects_per_type=4), r"only 4 images in test/\w+; --defects-per-type 4 needs 5"),
    (dict(protocol="supervised", defects_total=13), "--defects-total 13 is more than the 12"),
    (dict(protocol="kfold", k=5), "kfold with --k 5 needs >= 5 images of each type"),
    (dict(protocol="kfold", k=3, fold=3), "--fold must be in 0..2"),
    (dict(protocol="random"), "unknown split protocol"),
    (dict(protocol="good-only", val_fraction=1.0), "val-fraction"),
])
def test_unsatisfiable_protocols_are_clear_errors(tiny_data, kwargs, message):
    protocol = kwargs.pop("protocol")
    with pytest.raises(DataError, match=message):
        make_split(tiny_data, protocol, **kwargs)


def test_supervised_without_defective_images_is_an_error(tmp_path):
    from PIL import Image

    for sub, n in (("train/good", 3), ("test/good", 2)):
        (tmp_path / sub).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / sub / f"{i}.png")
    with pytest.raises(DataError, match="supervised needs defective images"):
        make_split(tmp_path, "supervised")
    with pytest.raises(DataError, match="kfold needs defective images"):
        make_split(tmp_path, "kfold", k=2)
