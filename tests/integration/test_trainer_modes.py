"""Classifier training variants: threshold policies, honesty warnings, --config re-runs, errors."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.fixtures.trainer import tiny_train_config

pytestmark = pytest.mark.slow

CHEAP = dict(epochs=4, fine_tune_epochs=0, aug_copies=0)


def _val_scores(run_dir):
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model
    from trainer.data.run_contract import run_split

    files = run_split(run_dir, "val")
    x = load_batch([f["abspath"] for f in files], 96).astype(np.float32)
    s = load_model(run_dir / "model.keras").predict(x, verbose=0)["defect"][:, 0]
    return np.array([f["label"] for f in files]), s


def test_threshold_policy_end_to_end(tiny_manifest_supervised, tmp_path):
    from trainer.metrics import choose_threshold
    from trainer.train import train_classifier

    policy = "fpr@0.01"   # recall@0.99 is the shared fixture's; max-f1 is choose_threshold's (unit test)
    root, manifest = tiny_manifest_supervised
    run = train_classifier(tiny_train_config(root, manifest, tmp_path, threshold_policy=policy, **CHEAP),
                           progress=False)
    info = json.loads((run / "run.json").read_text())
    assert info["threshold_policy"] == policy
    y, s = _val_scores(run)
    # Decision folded into the model: 0.5 in run.json, the policy's own threshold kept as raw_threshold.
    assert info["threshold"] == 0.5
    m = json.loads((run / "metrics.json").read_text())
    # 6 good val images: no false alarm allowed, and the saved model's val verdicts are the policy's
    # (computed here from the reloaded model's scores, which are already shifted to decide at 0.5).
    assert not np.any(s[y == 0] >= 0.5)
    assert m["threshold_info"]["achieved_fpr"] == 0.0
    assert m["threshold_info"]["val_verdicts_changed_by_shift"] == 0
    assert np.mean(s[y == 1] >= 0.5) == pytest.approx(m["threshold_info"]["achieved_recall"])
    # The policy sat just above a good score; the raw threshold moved up into the gap.
    assert m["threshold_info"]["placed_in_gap"]
    assert info["raw_threshold"] > m["threshold_info"]["policy_threshold"]
    # The verdicts equal fpr@0.01 applied to the raw scores (recovered from the saved, shifted ones).
    from trainer.threshold import logit, sigmoid

    raw = sigmoid(logit(s) + logit(info["raw_threshold"]))
    expected, _ = choose_threshold(y, raw, policy)
    assert np.array_equal(raw >= expected, s >= 0.5)


def test_single_class_model_and_val_without_defects_warn_loudly(tiny_manifest_supervised, tmp_path):
    """Random-init backbone -> constant features -> one class; val holds no defect -> threshold 0.5.

    Training still finishes and writes the run, but says so on screen and in metrics.json.
    """
    from trainer.data.run_contract import load_manifest, manifest_hash, save_manifest
    from trainer.train import train_classifier

    root, manifest = tiny_manifest_supervised
    m = load_manifest(manifest)
    for f in m["files"]:
        if f["split"] == "val" and f["label"] == 1:
            f["split"] = "train"
    m["sha256"] = manifest_hash(m["files"])
    save_manifest(m, tmp_path / "noval.json")
    lines = []
    run = train_classifier(tiny_train_config(root, tmp_path / "noval.json", tmp_path, alpha=0.35, weights=None,
                                             **CHEAP), progress=lines.append)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["threshold"] == 0.5
    warnings = metrics["warnings"]
    assert any(w.startswith("val: no defective image") for w in warnings), warnings
    assert any(w.startswith("threshold:") for w in warnings), warnings
    assert any(w.startswith("test: SINGLE-CLASS MODEL") for w in warnings), warnings
    assert any(line.startswith("\x1b") or line.startswith("WARNING") for line in lines if "SINGLE-CLASS" in line)
    assert (run / "model.keras").is_file() and (run / "run.json").is_file()


def test_config_json_reruns_the_same_training(tiny_manifest_supervised, tmp_path):
    from edge.cli import main

    root, manifest = tiny_manifest_supervised
    args = ["--data", str(root), "--manifest", str(manifest), "--mode", "classifier", "--alpha", "1.0", "--input-size", "96",
            "--weights", str(tiny_train_config(root, manifest, tmp_path).weights), "--epochs", "2",
            "--fine-tune-epochs", "1", "--aug-copies", "1", "--project", str(tmp_path / "runs"), "--name", "cfg"]
    r1 = CliRunner().invoke(main, ["train", *args])
    assert r1.exit_code == 0, r1.output
    first = tmp_path / "runs" / "cfg"
    assert str(first) in r1.output
    r2 = CliRunner().invoke(main, ["train", "--config", str(first / "config.json")])
    assert r2.exit_code == 0, r2.output
    second = tmp_path / "runs" / "cfg2"
    assert json.loads((second / "config.json").read_text()) == json.loads((first / "config.json").read_text())
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (first, second))
    assert m2["threshold"] == m1["threshold"] == 0.5
    assert m2["raw_threshold"] == pytest.approx(m1["raw_threshold"], abs=1e-4)
    assert m2["test"]["auroc"] == pytest.approx(m1["test"]["auroc"], abs=1e-6)
    assert m2["test"]["confusion_matrix"] == m1["test"]["confusion_matrix"]


def test_weights_for_another_architecture_is_one_line_error(tiny_data, weights_no_top):
    from edge.cli import main

    r = CliRunner().invoke(main, ["train", "--data", str(tiny_data), "--defects-per-type", "2", "--alpha", "0.35",
                                  "--input-size", "96", "--weights", str(weights_no_top)])
    assert r.exit_code == 2, r.output
    assert "not MobileNetV2 alpha=0.35 weights" in r.output and "Traceback" not in r.output
