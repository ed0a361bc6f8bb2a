"""``train --mode combined`` / ``--mode auto`` end to end on tiny synthetic parts: the saved graph computes
what the NumPy reference says, and the run records what was chosen and why."""
import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def combined_run(tiny_manifest_supervised, tmp_path_factory, weights_no_top):
    from trainer.cli import dispatch, resolved
    from trainer.config import TrainConfig

    root, manifest = tiny_manifest_supervised
    cfg = TrainConfig(data=str(root), manifest=str(manifest), alpha=1.0, input_size=96, weights=str(weights_no_top),
                      seed=0, anomaly={"bank_size": 256}, project=str(tmp_path_factory.mktemp("runs")), name="auto")
    assert cfg.mode == "auto"   # the default
    return dispatch(resolved(cfg))


def test_auto_picks_combined_and_says_why(combined_run):
    info = json.loads((combined_run / "run.json").read_text())
    assert info["mode"] == "combined" and info["task"] == "anomaly"
    assert info["mode_choice"]["mode"] == "combined" and "8 defective" in info["mode_choice"]["why"]
    assert info["labels"] == ["good", "crack", "cut", "hole", "print", "unknown"]
    # config.json pins what auto chose: a re-run trains the same mode even if the rule changes
    assert json.loads((combined_run / "config.json").read_text())["mode"] == "combined"
    metrics = json.loads((combined_run / "metrics.json").read_text())
    c = metrics["combined"]
    assert c["n_defective"] == 8 and c["n_good"] == 30
    lo, hi = c["expected_recall_ci95"]
    assert lo <= c["expected_recall"] <= hi
    assert metrics["types"]["test"]["n"] >= 1 and "per_type" in metrics["types"]["test"]
    assert metrics["test"]["auroc"] > 0.5 and "balanced_accuracy" in metrics["test"]


def test_graph_matches_the_numpy_reference(combined_run, tiny_manifest_supervised):
    from trainer.anomaly.fit_combined import fit_combined_params
    from trainer.anomaly.model import extract_features
    from trainer.anomaly.reference import combined_reference
    from trainer.anomaly.combined_model import build_combined
    from trainer.anomaly.settings import anomaly_settings
    from trainer.data.dataset import load_batch
    from trainer.layers import load_model

    root, _ = tiny_manifest_supervised
    model = load_model(combined_run / "model.keras")
    extractor = model.get_layer("patch_features")
    rng = np.random.default_rng(0)
    paths = sorted(root.glob("test/*/*.png"))
    x = load_batch(paths, (96, 96)).astype(np.float32)
    feats = extract_features(extractor, x)
    probe = feats.pop()
    good, bad = feats, [f[:6] for f in feats]
    # fresh parameters from these features, built into a graph and compared with NumPy
    types = ["crack", "cut", "hole"] * 2
    params = fit_combined_params([f[6:] for f in good], bad, probe[6:], probe[:6], types,
                                 anomaly_settings({"bank_size": 128, "folds": 3}), 0, lambda *_: None)[0]
    graph = build_combined(extractor, params)
    got = graph(x, training=False)
    ref = combined_reference(feats, probe, params)
    np.testing.assert_allclose(np.asarray(got["score"])[:, 0], ref["score"], atol=2e-4)
    np.testing.assert_allclose(np.asarray(got["map"]), ref["map"], atol=2e-4)
    np.testing.assert_allclose(np.asarray(got["type"]), ref["type"], atol=2e-3)
    assert got["type"].shape[-1] == 5 and float(np.asarray(got["type"])[:, 0].max()) < 1e-6  # "good" never named
    del rng


def test_combined_refuses_a_split_without_defects(tiny_manifest_good_only, tmp_path, weights_no_top):
    from edge.errors import DataError
    from trainer.anomaly.fit_combined import train_combined
    from trainer.config import TrainConfig

    root, manifest = tiny_manifest_good_only
    cfg = TrainConfig(data=str(root), manifest=str(manifest), mode="combined", input_size=96,
                      weights=str(weights_no_top), project=str(tmp_path), name="x")
    with pytest.raises(DataError, match="defective image.*--mode anomaly"):
        train_combined(cfg, echo=lambda *_: None)
