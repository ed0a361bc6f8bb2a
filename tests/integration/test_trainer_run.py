"""End-to-end classifier training on the tiny synthetic set (shared session run)."""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

RUN_FILES = ("model.keras", "run.json", "config.json", "manifest.json", "metrics.json", "preprocess.json",
             "labels.txt", "curves.png", "confusion.png")


def test_run_folder_has_every_contract_file(tiny_classifier_run, tiny_manifest_supervised):
    for name in RUN_FILES:
        assert (tiny_classifier_run / name).is_file(), name
    assert not [p.name for p in tiny_classifier_run.iterdir() if p.name.startswith(".")], "temp files left behind"
    info = json.loads((tiny_classifier_run / "run.json").read_text())
    manifest = json.loads(tiny_manifest_supervised[1].read_text())
    assert info["task"] == "classifier"
    assert info["labels"][0] == "good" and set(info["labels"][1:]) == {"crack", "cut", "hole", "print"}
    assert info["input_size"] == [96, 96]
    # The trained threshold lives in the model (defect head bias): the saved model decides at 0.5.
    assert info["threshold_policy"] == "recall@0.99" and info["threshold"] == 0.5
    assert 0.0 < info["raw_threshold"] < 1.0
    assert info["manifest_sha256"] == manifest["sha256"]
    assert (tiny_classifier_run / "labels.txt").read_text().split() == info["labels"]
    assert json.loads((tiny_classifier_run / "manifest.json").read_text())["sha256"] == manifest["sha256"]
    for png in ("curves.png", "confusion.png"):
        assert (tiny_classifier_run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_are_honest_and_complete(tiny_classifier_run):
    m = json.loads((tiny_classifier_run / "metrics.json").read_text())
    for split in ("val", "test"):
        rep = m[split]
        for key in ("auroc", "balanced_accuracy", "majority_baseline", "confusion_matrix", "precision", "recall", "f1"):
            assert key in rep, (split, key)
    assert m["test"]["n"] == 16 and m["test"]["n_defective"] == 8
    assert set(m["per_type_test"]) == {"good", "crack", "cut", "hole", "print"}
    assert m["threshold"] == json.loads((tiny_classifier_run / "run.json").read_text())["threshold"]
    # ImageNet features separate the synthetic defects even at 96 px with 6 defective images.
    assert m["test"]["auroc"] > 0.7, m["test"]
    assert isinstance(m["warnings"], list)
    assert set(m["histories"]) == {"head", "fine_tune"}
    assert m["timing"]["feature_cache_s"] > 0


def test_progress_printed_per_epoch(tiny_classifier_log):
    text = "\n".join(tiny_classifier_log)
    assert "[head] epoch 1/6" in text and "[fine-tune] epoch 1/2" in text
    assert "AUROC" in text and "majority baseline" in text and "run saved:" in text


def test_saved_model_reloads_and_predicts_the_same(tiny_classifier_run, tiny_data):
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model
    from export.convert import batch1_model

    model = load_model(tiny_classifier_run / "model.keras")
    assert tuple(model.input.shape) == (None, 96, 96, 3)
    paths = sorted((tiny_data / "test").glob("*/*.png"))[:6]
    x = load_batch(paths, 96).astype(np.float32)
    a = model.predict(x, verbose=0)
    b = load_model(tiny_classifier_run / "model.keras").predict(x, verbose=0)
    assert set(a) == {"defect", "type"} and a["defect"].shape == (6, 1) and a["type"].shape == (6, 5)
    np.testing.assert_allclose(a["defect"], b["defect"], atol=1e-6)
    np.testing.assert_allclose(a["type"].sum(axis=1), 1.0, atol=1e-5)
    one = batch1_model(model)
    assert tuple(one.input.shape) == (1, 96, 96, 3)
    np.testing.assert_allclose(one.predict(x[:1], verbose=0)["defect"], a["defect"][:1], atol=1e-5)
    # The model takes raw pixels: scaling is its first layer, not the caller's job.
    assert model.layers[1].name == "scale"


def test_saved_model_scores_match_metrics(tiny_classifier_run):
    """The reported test metrics were computed from the saved model, not from a training-time twin."""
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model
    from trainer.metrics import auroc
    from trainer.data.run_contract import run_split

    files = run_split(tiny_classifier_run, "test")
    x = load_batch([f["abspath"] for f in files], 96).astype(np.float32)
    s = load_model(tiny_classifier_run / "model.keras").predict(x, verbose=0)["defect"][:, 0]
    m = json.loads((tiny_classifier_run / "metrics.json").read_text())
    assert auroc([f["label"] for f in files], s) == pytest.approx(m["test"]["auroc"], abs=1e-6)


def test_saved_model_decides_at_half_exactly_where_the_raw_threshold_did(tiny_classifier_run):
    """Folding -logit(raw threshold) into the defect bias changed no val verdict and left the gap's margin."""
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model
    from trainer.data.run_contract import run_split
    from trainer.threshold import logit

    m = json.loads((tiny_classifier_run / "metrics.json").read_text())
    info = m["threshold_info"]
    assert info["val_verdicts_changed_by_shift"] == 0
    files = run_split(tiny_classifier_run, "val")
    x = load_batch([f["abspath"] for f in files], 96).astype(np.float32)
    s = load_model(tiny_classifier_run / "model.keras").predict(x, verbose=0)["defect"][:, 0].astype(np.float64)
    y = np.array([f["label"] for f in files])
    assert np.mean(s[y == 1] >= 0.5) == pytest.approx(info["achieved_recall"])
    assert np.mean(s[y == 0] >= 0.5) == pytest.approx(info["achieved_fpr"])
    if info.get("placed_in_gap"):
        # On the saved scale the gap's ends sit at the recorded logit margins below and above 0.
        lo, hi = (logit(v) - logit(info["raw_threshold"]) for v in info["gap"])
        assert (-lo, hi) == pytest.approx(tuple(info["margin_logit"]), rel=1e-6) and lo < 0 < hi
        # No val score lies inside the gap, so none sits near the decision.
        z = logit(s)
        assert not np.any((z > lo + 1e-4) & (z < hi - 1e-4)), (z, lo, hi)
