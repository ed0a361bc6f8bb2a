"""The field loop on the tiny anomaly run: train --update absorbs new good parts without touching the old
images, and export's regression gate refuses an update that flips the parent's golden verdicts."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import main


@pytest.fixture
def parent(tiny_anomaly_run, tmp_path):
    dest = tmp_path / "runs" / tiny_anomaly_run.name
    shutil.copytree(tiny_anomaly_run, dest, ignore=shutil.ignore_patterns("export"))
    return dest


@pytest.fixture
def new_good(tmp_path):
    from trainer.data.synth import generate

    root = generate(tmp_path / "field", size=96, n_train=6, n_test_good=0, n_per_defect=0, seed=11, progress=False)
    return root / "train" / "good"


def _scores(run, paths):
    from export.calibration import load_images
    from trainer.layers import load_model

    x = load_images(paths, (96, 96))[0].astype(np.float32)
    return np.asarray(load_model(run / "model.keras")(x)["score"])[:, 0]


def test_update_absorbs_new_good_parts_and_records_lineage(parent, new_good, monkeypatch):
    from trainer.anomaly import fit
    from trainer.anomaly.cache import load_update_cache
    from trainer.data.run_contract import file_sha256, read_run

    seen = []
    real = fit.features_of
    monkeypatch.setattr(fit, "features_of", lambda ex, files, *a, **k: seen.extend(f["file"] for f in files)
                        or real(ex, files, *a, **k))
    res = CliRunner().invoke(main, ["train", "--update", str(parent), "--add-good", str(new_good)])
    assert res.exit_code == 0, res.output
    child = parent.parent / f"{parent.name}2"  # numbered beside the parent
    info, pinfo = read_run(child), read_run(parent)
    added = sorted(new_good.glob("*.png"))
    assert sorted(seen) == sorted(str(p.resolve()) for p in added)  # no old image's features recomputed
    lin = info["lineage"]
    assert lin["parent"] == str(parent.resolve()) and lin["parent_name"] == parent.name
    assert {(a["file"], a["sha256"], a["label"], a["type"]) for a in lin["added"]} == {
        (str(p.resolve()), file_sha256(p), 0, "good") for p in added}
    old, new = load_update_cache(parent), load_update_cache(child)
    assert new["bank"].shape == old["bank"].shape and not np.array_equal(new["bank"], old["bank"])
    assert new["fit_sha256"] == old["fit_sha256"] + [file_sha256(p) for p in added]
    assert len(new["oof_patch"]) == len(old["oof_patch"]) + len(added)
    # the Gaussian lives in unlevelled units: the added parts' pooled means are divided back by the
    # levels the parent's graph pools with (model.levels_for), the parent's rows are kept as they were
    from export.calibration import load_images
    from trainer.anomaly import scorer_params
    from trainer.anomaly.model import extract_features, level_scale
    from trainer.layers import load_model

    ext, _ = scorer_params(load_model(parent / "model.keras"))
    scale = level_scale(ext)
    pooled = extract_features(ext, load_images(added, (96, 96))[0].astype(np.float32))[1]
    assert scale is not None and (scale < 1).any()
    np.testing.assert_allclose(new["fit_global"][len(old["fit_global"]):], pooled / scale, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(new["fit_global"][:len(old["fit_global"])], old["fit_global"])
    assert info["anomaly"]["max_false_reject"] == pinfo["anomaly"]["max_false_reject"]
    cal = json.loads((child / "calibration.json").read_text())
    assert cal["n_added"] == len(added) and cal["n_good"] == len(new["oof_patch"])
    # the new parts are now known: the child scores them lower than the parent did
    assert _scores(child, added).mean() < _scores(parent, added).mean()
    golden = json.loads((child / "golden.json").read_text())
    assert golden["images"] and {g["label"] for g in golden["images"]} == {0, 1}


def test_gate_exits_2_on_a_broken_update_and_names_the_flipped_golden_images(parent, tmp_path):
    golden = json.loads((parent / "golden.json").read_text())
    defects = [g for g in golden["images"] if g["label"] == 1]
    assert defects and all(g["verdict"] == "defective" for g in defects)
    wrong = tmp_path / "wrong" / "confirmed_good"  # defects "confirmed" as good: a broken update
    wrong.mkdir(parents=True)
    for i, g in enumerate(defects):
        shutil.copy(g["file"], wrong / f"{i}_{g['type']}.png")
    run = CliRunner()
    assert run.invoke(main, ["export", str(parent), "--fp32", "-q"]).exit_code == 0
    res = run.invoke(main, ["train", "--update", str(parent), "--add-good", str(wrong.parent)])
    assert res.exit_code == 0, res.output
    child = parent.parent / f"{parent.name}2"
    res = run.invoke(main, ["export", str(child), "--fp32"])
    assert res.exit_code == 2, res.output
    report = json.loads((child / "export" / "export_report.json").read_text())
    reg = report["regression"]
    assert reg["status"] == "GOLDEN_FLIP" and reg["variants"]["fp32"]["compared_with"].endswith("model_fp32.tflite")
    flipped = [f for f in reg["variants"]["fp32"]["flips"] if f["kind"] == "golden"]
    assert flipped and all(f["before"] == "defective" and f["after"] == "good" for f in flipped)
    assert {f["file"] for f in flipped} <= {g["file"] for g in defects}
    for f in flipped[:3]:
        assert "/".join(f["file"].split("/")[-2:]) in res.output
    res = run.invoke(main, ["export", str(child), "--fp32", "--accept-changes", "-q"])
    assert res.exit_code == 0 and "--accept-changes" in res.output
    assert json.loads((child / "export" / "export_report.json").read_text())["regression"]["accepted"] is True


def test_classifier_update_refits_the_heads_on_cached_features_plus_the_added_images(tiny_classifier_run, tmp_path,
                                                                                        monkeypatch):
    from trainer.data import dataset
    from trainer.data.synth import generate
    from trainer.data.run_contract import read_run
    from trainer.layers import load_model

    parent = tmp_path / "runs" / tiny_classifier_run.name
    shutil.copytree(tiny_classifier_run, parent, ignore=shutil.ignore_patterns("export"))
    field = generate(tmp_path / "field", size=96, n_train=4, n_test_good=0, n_per_defect=2, seed=12, progress=False)
    seen = []
    real = dataset.load_batch
    monkeypatch.setattr(dataset, "load_batch", lambda paths, *a, **k: seen.extend(map(str, paths)) or real(paths, *a, **k))
    res = CliRunner().invoke(main, ["train", "--update", str(parent), "--add-good", str(field / "train" / "good"),
                                    "--add-defects", str(field / "test")])
    assert res.exit_code == 0, res.output
    child = parent.parent / f"{parent.name}2"
    lin = read_run(child)["lineage"]
    defects = sorted(p for p in (field / "test").rglob("*.png"))
    assert sorted(seen) == sorted(a["file"] for a in lin["added"])  # only the added images were decoded
    assert {(a["type"], a["label"]) for a in lin["added"] if a["label"] == 1} == {(p.parent.name, 1) for p in defects}
    old, new = load_model(parent / "model.keras"), load_model(child / "model.keras")
    assert not np.array_equal(old.get_layer("defect").get_weights()[0], new.get_layer("defect").get_weights()[0])
    for a, b in zip(old.weights[:-4], new.weights[:-4]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the backbone is the parent's
    x = real([str(p) for p in defects], (96, 96)).astype(np.float32)
    assert np.asarray(new(x)["defect"]).mean() > np.asarray(old(x)["defect"]).mean()
    assert (child / "golden.json").is_file() and (child / "update_cache.npz").is_file()
