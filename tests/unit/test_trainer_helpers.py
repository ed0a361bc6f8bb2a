"""Fast checks of the classifier trainer's pure parts: weights, labels, split checks, thresholds, config, CLI errors."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge.errors import DataError
from trainer.config import ConfigError, TrainConfig, load_config
from trainer.metrics import per_type_recall
from trainer.labels import check_split, class_weights, head_labels, sample_weights
from trainer.threshold import decide_threshold


def test_class_weights_balance_the_classes():
    y = [0] * 391 + [1] * 10
    w = class_weights(y, 2)
    assert w[0] == pytest.approx(401 / (2 * 391)) and w[1] == pytest.approx(401 / 20)
    # Each class then carries the same total weight.
    assert w[0] * 391 == pytest.approx(w[1] * 10)
    np.testing.assert_allclose(class_weights([0, 1, 0, 1], 2), [1.0, 1.0])


def test_class_weights_absent_class_gets_zero_and_others_rebalance():
    w = class_weights([0, 0, 0, 2], 4)        # types 1 and 3 absent from train
    assert w[1] == 0 and w[3] == 0
    assert w[0] * 3 == pytest.approx(w[2] * 1) == pytest.approx(4 / 2)
    sw = sample_weights([0, 2, 0], 3)
    assert sw.dtype == np.float32 and sw[1] == pytest.approx(3 / 2) and sw[0] == pytest.approx(3 / 4)


def test_head_labels_good_first_then_types_present_in_train():
    train = [{"type": "good"}, {"type": "print"}, {"type": "crack"}]
    assert head_labels(train, ["good", "crack", "cut", "hole", "print"]) == ["good", "crack", "print"]


def _f(label, split, t=None):
    return {"label": label, "split": split, "type": t or ("good" if label == 0 else "crack")}


def test_check_split_errors_are_one_line_and_say_what_to_do():
    ok = {"train": [_f(0, "train"), _f(1, "train")], "val": [_f(0, "val")], "test": []}
    check_split(ok, "m.json")
    with pytest.raises(DataError, match="no good images"):
        check_split({**ok, "train": [_f(1, "train")]}, "m.json")
    with pytest.raises(DataError, match="--mode anomaly") as exc:
        check_split({**ok, "train": [_f(0, "train")]}, "m.json")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("m.json")
    with pytest.raises(DataError, match="val split is empty"):
        check_split({**ok, "val": []}, "m.json")


def test_recall_threshold_sits_a_logit_margin_above_the_good_val_scores():
    from trainer.threshold import GOOD_MARGIN_LOGIT, logit

    y = [0, 0, 0, 0, 1, 1]
    s = [0.01, 0.05, 0.10, 0.20, 0.85, 0.90]
    thr, info = decide_threshold(y, s, "recall@0.99")
    assert info["policy_threshold"] == 0.85 and info["placed_in_gap"]
    assert (info["highest_good_val_score"], info["weakest_caught_defect_val_score"]) == (0.20, 0.85)
    # GOOD_MARGIN_LOGIT above the highest good score (not 0.001 above it), the rest of the gap towards the defect.
    assert logit(thr) - logit(0.20) == pytest.approx(GOOD_MARGIN_LOGIT)
    assert info["margin_logit"] == pytest.approx([GOOD_MARGIN_LOGIT, logit(0.85) - logit(0.20) - GOOD_MARGIN_LOGIT])
    assert info["achieved_recall"] == 1.0 and info["achieved_fpr"] == 0.0
    # A narrow gap (0.45..0.60 is 0.6 logit): the margin is capped at its middle, equal logit distance to both ends.
    thr5, info5 = decide_threshold([0, 0, 1, 1], [0.1, 0.45, 0.6, 0.9], "recall@0.99")
    assert logit(thr5) - logit(0.45) == pytest.approx(logit(0.6) - logit(thr5))
    # A wide gap (the usual case): GOOD_MARGIN_LOGIT above the highest good score, far below the defect.
    thr4, info4 = decide_threshold([0] * 20 + [1, 1], [0.001 * i for i in range(20)] + [0.97, 0.99], "recall@0.99")
    assert logit(thr4) - logit(0.019) == pytest.approx(GOOD_MARGIN_LOGIT)
    assert 0.019 + 1e-3 < thr4 < 0.97 and info4["margin_logit"][1] > GOOD_MARGIN_LOGIT
    # The false alarms the policy threshold already had are kept, not added to.
    thr2, info2 = decide_threshold([0, 0, 1, 1], [0.1, 0.9, 0.5, 0.95], "recall@0.99")
    assert 0.1 < thr2 < 0.5 and info2["achieved_fpr"] == 0.5 and info2["achieved_recall"] == 1.0
    # A val split without defects falls back to 0.5 and says so.
    thr3, info3 = decide_threshold([0, 0, 0], [0.1, 0.2, 0.3], "recall@0.99")
    assert thr3 == 0.5 and "warning" in info3


def test_other_policies_keep_their_val_verdicts_but_leave_the_score_they_sat_on():
    from trainer.metrics import choose_threshold

    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    s = np.array([0.01, 0.05, 0.10, 0.20, 0.85, 0.90, 0.5, 0.3])
    for policy in ("max-f1", "fpr@0.01", "fpr@0.3"):
        base, _ = choose_threshold(y, s, policy)
        thr, info = decide_threshold(y, s, policy)
        assert np.array_equal(s >= thr, s >= base), policy
        assert info["placed_in_gap"] and thr not in s, (policy, thr)
        lo, hi = info["gap"]
        assert lo < thr < hi and not np.any((s > lo) & (s < hi)), (policy, info)
        assert min(info["margin_logit"]) > 0.1, (policy, info)


def test_gap_placement_in_logit_space_survives_saturated_scores():
    from trainer.threshold import in_gap, mid_gap

    assert mid_gap(0.2, 0.8) == pytest.approx(0.5) and in_gap(0.2, 0.8, 0.25) < 0.5
    assert in_gap(0.001, 0.999, margin_logit=0.0) == pytest.approx(0.001)
    t = mid_gap(1 - 1e-15, 1.0)   # both clip to the same logit: falls back to the plain midpoint
    assert 1 - 1e-15 < t <= 1.0


def test_per_type_recall():
    files = [_f(0, "test"), _f(0, "test"), _f(1, "test", "crack"), _f(1, "test", "cut"), _f(1, "test", "cut")]
    r = per_type_recall([f["type"] for f in files], [0.1, 0.9, 0.8, 0.2, 0.7], 0.5)
    assert r == {"crack": {"n": 1, "recall": 1.0}, "cut": {"n": 2, "recall": 0.5},
                 "good": {"n": 2, "false_alarm_rate": 0.5}}


def test_config_round_trip_and_unknown_keys(tmp_path):
    cfg = load_config(epochs=3, alpha=0.35, input_size=96, weights="none", name="x")
    assert cfg.weights is None and cfg.epochs == 3
    cfg.save(tmp_path / "config.json")
    again = load_config(tmp_path / "config.json")
    assert again == cfg
    assert load_config(tmp_path / "config.json", epochs=7).epochs == 7
    d = json.loads((tmp_path / "config.json").read_text())
    d["epochz"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ConfigError, match=r"unknown config keys \['epochz'\]"):
        load_config(tmp_path / "bad.json")
    for bad in (dict(alpha=0.3), dict(threshold_policy="recall@2"), dict(augment={"blur": 1}), dict(device="npu"),
                dict(fine_tune_blocks=18), dict(input_size=16)):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def _cli(args):
    from edge.cli import main

    return CliRunner().invoke(main, ["train", *args])


def test_cli_missing_data_folder_is_one_line_exit_2(tmp_path):
    r = _cli(["--data", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "data folder not found" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_cli_unknown_config_key_and_empty_class(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"epochs": 1, "learnin_rate": 0.1}))
    r = _cli(["--config", str(tmp_path / "c.json")])
    assert r.exit_code == 2 and "learnin_rate" in r.output and "Traceback" not in r.output
    root = tmp_path / "data"
    (root / "train" / "good").mkdir(parents=True)
    (root / "test" / "crack").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "train" / "good" / "a.png")
    r = _cli(["--data", str(root)])
    assert r.exit_code == 2 and "crack" in r.output and "no images" in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_mode_anomaly_dispatches_to_anomaly_trainer(monkeypatch, tmp_path):
    import trainer.anomaly as anomaly
    from trainer.cli import dispatch

    seen = []
    monkeypatch.setattr(anomaly, "train_anomaly", lambda cfg, **kw: seen.append(cfg) or tmp_path)
    cfg = TrainConfig(mode="anomaly", data=str(tmp_path))
    assert dispatch(cfg) == tmp_path and seen == [cfg]
