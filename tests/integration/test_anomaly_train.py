"""Anomaly mode end to end on the tiny synthetic set: good-only fitting, threshold, run folder, reload."""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def _files(run):
    return json.loads((run / "manifest.json").read_text())["files"]


def test_run_folder_has_the_shared_contract(tiny_anomaly_run):
    run = tiny_anomaly_run
    for name in ("model.keras", "run.json", "config.json", "manifest.json", "metrics.json", "preprocess.json",
                 "labels.txt", "confusion.png", "scores.png", "calibration.json"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "anomaly" and info["labels"] == ["good", "defective"]
    assert info["threshold"] == 0.5 and info["input_size"] == [96, 96]
    assert "good-only" in info["threshold_policy"]
    assert info["anomaly"]["bank_size"] == 512 and info["anomaly"]["feature_dim"] == 128
    assert info["anomaly"]["map_size"] == [12, 12]
    maps = sorted((run / "maps").glob("*.png"))
    assert len(maps) == 6 and {p.name.split("_")[0] for p in maps} >= {"good", "crack", "cut"}


def test_fitted_on_good_train_and_val_images_only(tiny_anomaly_run):
    files = _files(tiny_anomaly_run)
    metrics = json.loads((tiny_anomaly_run / "metrics.json").read_text())
    used = set(metrics["fit_images"])
    # out-of-fold scores calibrate the threshold, so val's good images are fitted on too
    good = {f["path"] for f in files if f["split"] in ("train", "val") and f["label"] == 0}
    assert used == good and len(used) == 30
    defective = {f["path"] for f in files if f["label"] == 1}
    assert defective and not used & defective
    assert not used & {f["path"] for f in files if f["split"] == "test"}
    cal = metrics["calibration"]
    assert cal["n_good"] == cal["n_out_of_fold"] == 30 and cal["folds"] == 5


def test_report_is_honest_and_separates_defects(tiny_anomaly_run):
    m = json.loads((tiny_anomaly_run / "metrics.json").read_text())
    test = m["test"]
    assert test["n_defective"] == 16 and test["n_good"] == 8
    for key in ("auroc", "balanced_accuracy", "majority_baseline", "warnings"):
        assert key in test
    assert test["auroc"] >= 0.85
    assert test["balanced_accuracy"] > test["majority_baseline"] - 0.1
    assert m["per_type_test"]["good"]["false_alarm_rate"] <= 0.25
    assert set(m["per_type_test"]) == {"good", "crack", "cut", "hole", "print"}
    cal = m["calibration"]
    assert cal["max_false_reject"] == 0.01 and cal["evidence"] == "patch+global"
    lo, hi = cal["expected_false_reject_ci95"]
    assert lo <= cal["expected_false_reject"] <= hi
    assert "cannot verify" in cal["warning"]  # 30 good images cannot vouch for 1%


def test_reloaded_model_flags_a_painted_defect_and_passes_the_good_part(tiny_anomaly_run):
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model

    model = load_model(tiny_anomaly_run / "model.keras")
    run_root = json.loads((tiny_anomaly_run / "manifest.json").read_text())["root"]
    good = [f for f in _files(tiny_anomaly_run) if f["split"] == "test" and f["type"] == "good"]
    x = load_batch([f"{run_root}/{f['path']}" for f in good], 96)
    scores = np.asarray(model(x.astype(np.float32))["score"])[:, 0]
    i = int(np.argmin(scores))
    assert scores[i] < 0.5
    bad = x[i].copy()
    yy, xx = np.mgrid[:96, :96]
    bad[(yy - 44) ** 2 + (xx - 50) ** 2 < 9 ** 2] = (20, 200, 30)  # a green blot on the nut
    out = model(np.stack([x[i], bad]).astype(np.float32))
    s = np.asarray(out["score"])[:, 0]
    amap = np.asarray(out["map"])
    assert s[0] < 0.5 <= s[1]
    assert amap.shape == (2, 12, 12)
    # The map's hottest cell is where the blot is (cell = 8 px; the blot spans cells 4..7).
    r, c = np.unravel_index(np.argmax(amap[1]), amap.shape[1:])
    assert 3 <= r <= 7 and 4 <= c <= 8
    # The score is the stronger of the patch and the global evidence, so it is at least the patch
    # evidence's verdict: a cell at >= 0.5 in the map means the image is defective.
    assert (amap[1].max() >= 0.5) <= (s[1] >= 0.5)


def test_too_few_good_images_is_a_clear_error(tiny_manifest_good_only, tmp_path):
    from edge.errors import DataError
    from trainer.anomaly import train_anomaly
    from trainer.config import TrainConfig
    from trainer.data.run_contract import load_manifest, manifest_hash, save_manifest

    root, path = tiny_manifest_good_only
    m = load_manifest(path)
    keep = [f for f in m["files"] if f["split"] in ("train", "val") and f["label"] == 0][:1]
    m["files"] = keep + [f for f in m["files"] if f["split"] == "test"]
    m["sha256"] = manifest_hash(m["files"])
    save_manifest(m, tmp_path / "m.json")
    cfg = TrainConfig(data=str(root), manifest=str(tmp_path / "m.json"), mode="anomaly", alpha=0.35,
                      input_size=96, weights=None, project=str(tmp_path / "runs"))
    with pytest.raises(DataError, match="train and val splits have 1 good image"):
        train_anomaly(cfg, echo=lambda line: None)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_config_json_is_resolved_and_re_runs_to_the_same_model(tiny_anomaly_run, tmp_path):
    """config.json pins every anomaly setting, so a re-run from it does not depend on today's defaults."""
    from click.testing import CliRunner

    from edge.cli import main
    from tests.fixtures.anomaly import TINY_ANOMALY
    from trainer.anomaly.settings import DEFAULTS, anomaly_settings

    saved = json.loads((tiny_anomaly_run / "config.json").read_text())
    assert set(saved["anomaly"]) == set(DEFAULTS) and saved["anomaly"] == anomaly_settings(TINY_ANOMALY)
    r = CliRunner().invoke(main, ["train", "--config", str(tiny_anomaly_run / "config.json"),
                                  "--set", f"project={json.dumps(str(tmp_path))}", "--set", "anomaly.save_maps=false"])
    assert r.exit_code == 0, r.output
    again = next(p for p in tmp_path.iterdir() if (p / "run.json").is_file())
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (tiny_anomaly_run, again))
    assert json.loads((again / "run.json").read_text())["anomaly"]["bank_size"] == saved["anomaly"]["bank_size"]
    assert second["test"]["confusion_matrix"] == first["test"]["confusion_matrix"]


def test_masks_give_pixel_auroc_and_aupro_in_metrics(tiny_anomaly_run):
    """The synthetic defects carry exact masks, so the test report holds the MVTec pixel metrics; a map
    that points at the painted defects scores well above chance (pixel AUROC 0.5, AUPRO 0.15)."""
    m = json.loads((tiny_anomaly_run / "metrics.json").read_text())
    pix = m["pixel_test"]
    assert pix["masked"] == 16 and pix["images"] == 24 and pix["resolution"] == [96, 96]
    assert pix["pixel_auroc"] > 0.8
    assert 0.3 < pix["aupro"] <= 1.0


def test_bench_reports_pixel_metrics_of_an_anomaly_run(tiny_anomaly_run):
    from benchmarks.bench import run_bench

    res = run_bench(tiny_anomaly_run, variants=["keras"], repeats=2, warmup=1, n_boot=20, litert_benchmark=False,
                    progress=False, cold=False, keras_repeats=2, write=False)
    pix = res["variants"]["keras"]["accuracy"]["pixel"]
    train = json.loads((tiny_anomaly_run / "metrics.json").read_text())["pixel_test"]
    # bench decodes through edge.imageio, train through trainer.data: the same pixels, the same maps
    assert pix["masked"] == train["masked"] == 16
    assert abs(pix["pixel_auroc"] - train["pixel_auroc"]) < 1e-3
    assert abs(pix["aupro"] - train["aupro"]) < 1e-3
