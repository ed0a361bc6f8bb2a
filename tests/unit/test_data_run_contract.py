"""The one run-folder/manifest contract: every stage reads a run through trainer.data.run_contract."""
import json

import numpy as np
import pytest
from PIL import Image

from edge.errors import DataError
from trainer.data.run_contract import (RunError, build_manifest, load_manifest, manifest_hash, read_run, resolve_root,
                                       run_manifest, run_split, save_manifest, split_items)


def _dataset(root):
    files = []
    for split, typ, i in (("train", "good", 0), ("train", "good", 1), ("test", "good", 2), ("test", "crack", 3)):
        p = root / split / typ / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(p)
        files.append({"path": f"{split}/{typ}/{i}.png", "label": int(typ != "good"), "type": typ, "split": split})
    return files


def _run(tmp_path, manifest, **info):
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    save_manifest(manifest, run / "manifest.json")
    (run / "run.json").write_text(json.dumps({"task": "classifier", "labels": ["good", "crack"], "input_size": [8, 8],
                                              "threshold": 0.5, **info}))
    return run


def test_builder_hashes_files_and_lists_classes_good_first(tmp_path):
    m = build_manifest(tmp_path / "data", "supervised", 3, {"k": 1}, _dataset(tmp_path / "data"))
    assert m["classes"] == ["good", "crack"] and m["seed"] == 3 and m["root"] == str((tmp_path / "data").resolve())
    assert m["sha256"] == manifest_hash(m["files"]) and all(len(f["sha256"]) == 64 for f in m["files"])
    save_manifest(m, tmp_path / "m.json")
    assert load_manifest(tmp_path / "m.json") == m


def test_a_moved_dataset_is_one_clear_error_not_a_guess(tmp_path, monkeypatch):
    data = tmp_path / "data"
    run = _run(tmp_path, build_manifest(data, "supervised", 0, {}, _dataset(data)))
    assert [f["abspath"] for f in run_split(run, "train")] == [str(data / "train/good/0.png"), str(data / "train/good/1.png")]
    data.rename(tmp_path / "elsewhere")
    # The old export reader fell back to cwd/root silently; a same-named folder there must not be picked up.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data").rmdir()
    with pytest.raises(DataError) as exc:
        run_split(run, "test")
    msg = str(exc.value)
    assert "manifest.json" in msg and "not found" in msg and "move the dataset back" in msg and "\n" not in msg
    moved = resolve_root(run_manifest(run), run / "manifest.json", data=tmp_path / "elsewhere")
    assert [f["abspath"] for f in split_items(run_manifest(run), "test", moved)][0].startswith(str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="dataset folder not found"):
        resolve_root(run_manifest(run), run / "manifest.json", data=tmp_path / "nowhere")


def test_relative_root_is_relative_to_the_manifest_file(tmp_path):
    data = tmp_path / "run" / "data"
    m = build_manifest(data, "supervised", 0, {}, _dataset(data))
    run = _run(tmp_path, dict(m, root="data"))
    assert resolve_root(run_manifest(run), run / "manifest.json") == run / "data"


def test_run_manifest_checks_presence_and_hash(tmp_path):
    data = tmp_path / "data"
    m = build_manifest(data, "supervised", 0, {}, _dataset(data))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no manifest.json"):
        run_manifest(tmp_path / "empty")
    m["files"][0]["split"] = "test"  # edited after hashing
    run = _run(tmp_path, m)
    with pytest.raises(DataError, match="edited"):
        run_manifest(run)


def test_read_run_checks_keys_task_and_model(tmp_path):
    data = tmp_path / "data"
    run = _run(tmp_path, build_manifest(data, "supervised", 0, {}, _dataset(data)))
    assert read_run(run, need_model=False)["task"] == "classifier"
    with pytest.raises(RunError, match="no model.keras"):
        read_run(run)
    (run / "run.json").write_text(json.dumps({"task": "classifier"}))
    with pytest.raises(RunError, match="lacks 'labels', 'input_size', 'threshold'"):
        read_run(run, need_model=False)
    (run / "run.json").write_text(json.dumps({"task": "segment", "labels": [], "input_size": [8, 8], "threshold": 0.5}))
    with pytest.raises(RunError, match="unknown task 'segment'"):
        read_run(run, need_model=False)
    with pytest.raises(RunError, match="no run.json"):
        read_run(tmp_path / "data")


def test_update_cache_round_trips_and_a_missing_or_broken_one_is_one_line(tmp_path):
    import numpy as np

    from trainer.data.run_contract import RunError, read_update_cache, write_update_cache

    with pytest.raises(RunError, match="update_cache.npz: not found; .*re-train it once"):
        read_update_cache(tmp_path)
    out = write_update_cache(tmp_path, {"bank": np.eye(3, dtype=np.float32), "names": np.array(["a", "b"])})
    got = read_update_cache(tmp_path)
    assert out.name == "update_cache.npz" and set(got) == {"bank", "names"}
    assert np.array_equal(got["bank"], np.eye(3)) and got["names"].tolist() == ["a", "b"]
    assert set(read_update_cache(tmp_path, ["bank"])) == {"bank"}
    with pytest.raises(RunError, match="unreadable update cache"):
        read_update_cache(tmp_path, ["missing_key"])
    out.write_bytes(b"not an npz")
    with pytest.raises(RunError, match="unreadable update cache") as err:
        read_update_cache(tmp_path)
    assert "\n" not in str(err.value)
