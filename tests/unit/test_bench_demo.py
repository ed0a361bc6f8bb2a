"""Pieces of `edgeinspect demo` (the whole --quick path takes minutes on 2 cores, so it is not a test)."""
import json

from click.testing import CliRunner

from benchmarks import demo


def test_splits_follow_the_report_protocols(tiny_data, tmp_path):
    from trainer.data.run_contract import load_manifest

    paths = demo._splits(tiny_data, tmp_path, lambda *_: None)
    sup = load_manifest(paths["supervised"])
    good = load_manifest(paths["good-only"])
    sup_train_def = sum(f["label"] for f in sup["files"] if f["split"] in ("train", "val"))
    assert sup_train_def == 10, "classifier split must put 10 defective images (defects_total=10) into train/val"
    assert sum(f["label"] for f in sup["files"] if f["split"] == "test") > 0
    assert all(f["label"] == 0 for f in good["files"] if f["split"] in ("train", "val"))
    assert sum(f["label"] for f in good["files"] if f["split"] == "test") == 16


def test_synth_is_reused_only_with_identical_parameters(tiny_data, tmp_path):
    meta = json.loads((tiny_data / "synth.json").read_text())
    said = []
    params = {k: meta[k] for k in ("size", "n_train", "n_test_good", "n_per_defect")}
    assert demo._synth(tiny_data, "hazelnut", params, said.append) == tiny_data
    assert said and "reused" in said[0]


def test_bar_check_reads_int8_rows():
    summary = {"runs": {
        "classifier": {"int8": {"balanced_accuracy": 0.93, "auroc": 0.94}, "int8_speedup_vs_keras_predict": 12.0},
        "anomaly": {"int8": {"auroc": 0.99}, "int8_speedup_vs_keras_predict": 8.0}}}
    bars = demo._bar_check(summary)
    assert bars == {"classifier_int8_balanced_accuracy>=0.90": True, "classifier_int8_auroc>=0.95": False,
                    "anomaly_int8_auroc>=0.98": True, "classifier_int8_p50_10x_below_keras_predict": True,
                    "anomaly_int8_p50_10x_below_keras_predict": False}


def test_reference_files_are_per_kind_task_and_mode():
    assert demo.reference_path("hazelnut", "classifier").name == "demo_hazelnut_classifier.json"
    assert demo.reference_path("hazelnut", "anomaly", quick=True).name == "demo_hazelnut_anomaly_quick.json"


def test_help_names_offline_weights_option():
    res = CliRunner().invoke(demo.demo, ["--help"])
    assert res.exit_code == 0
    assert "--weights" in res.output and demo.WEIGHTS_ENV in res.output and "--quick" in res.output
