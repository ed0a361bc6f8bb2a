"""The metrics bench and training share (trainer.metrics), against scikit-learn on fixed inputs."""
import math

import numpy as np
import pytest
from sklearn.metrics import (balanced_accuracy_score, confusion_matrix, f1_score, precision_score, recall_score,
                             roc_auc_score)

from benchmarks.bench import accuracy_block
from benchmarks.compare import compare
from benchmarks.timing import latency_stats
from trainer.metrics import auroc, balanced_accuracy_at, per_type_recall

Y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 1, 0])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.5, 0.9, 0.7, 0.5, 0.3, 0.65, 0.1, 0.5, 0.45])
TYPES = ["good"] * 6 + ["crack", "crack", "hole", "hole", "hole", "good", "crack", "good"]


def test_rank_auroc_matches_sklearn_with_ties():
    assert auroc(Y, S) == pytest.approx(roc_auc_score(Y, S), abs=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(20):
        y = rng.integers(0, 2, 50)
        s = np.round(rng.uniform(0, 1, 50), 1)  # many ties
        if y.min() == y.max():
            continue
        assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(auroc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_balanced_accuracy_matches_sklearn():
    for t in (0.3, 0.5, 0.7):
        assert balanced_accuracy_at(t)(Y, S) == pytest.approx(balanced_accuracy_score(Y, S >= t))


def test_accuracy_block_matches_sklearn_and_has_ci():
    rep = accuracy_block(Y, TYPES, S, 0.5, n_boot=300, ref_pred=S >= 0.6)
    pred = (S >= 0.5).astype(int)
    assert rep["auroc"] == pytest.approx(roc_auc_score(Y, S))
    assert rep["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(Y, pred))
    assert rep["precision"]["defective"] == pytest.approx(precision_score(Y, pred))
    assert rep["recall"]["defective"] == pytest.approx(recall_score(Y, pred))
    assert rep["f1"]["defective"] == pytest.approx(f1_score(Y, pred))
    assert rep["confusion_matrix"]["rows_true_cols_pred"] == confusion_matrix(Y, pred).tolist()
    assert rep["majority_baseline"] == pytest.approx(8 / 14)
    lo, hi = rep["auroc_ci95"]
    assert lo <= rep["auroc"] <= hi and hi - lo > 0.01
    lo, hi = rep["balanced_accuracy_ci95"]
    assert lo <= rep["balanced_accuracy"] <= hi
    assert rep["agreement"] == pytest.approx(np.mean((S >= 0.6) == (S >= 0.5)))


def test_bench_type_accuracy_counts_caught_defects_per_type():
    # caught at 0.5: crack idx 6, 7, 12; hole idx 8, 10 (9 missed); good idx 3 and 5 are false alarms
    # named: crack idx 6 right, 7 wrong (hole), 12 right; hole idx 8 right, 10 wrong (crack); the miss at 9 and
    # the false alarms do not count
    pred_types = ["good"] * 3 + ["crack", "good", "hole", "crack", "hole", "hole", "hole", "crack", "good", "crack",
                                 "good"]
    rep = accuracy_block(Y, TYPES, S, 0.5, n_boot=50, pred_types=pred_types)
    assert rep["type_accuracy_n"] == 5 and rep["type_accuracy"] == pytest.approx(3 / 5)
    assert rep["type_accuracy_per_type"] == {"crack": {"accuracy": pytest.approx(2 / 3), "n": 3},
                                             "hole": {"accuracy": 0.5, "n": 2}}


def test_per_type_recall_counts_each_type():
    pt = per_type_recall(TYPES, S, 0.5)
    assert pt["crack"] == {"n": 3, "recall": 1.0}
    assert pt["hole"]["n"] == 3 and pt["hole"]["recall"] == pytest.approx(2 / 3)
    assert pt["good"] == {"n": 8, "false_alarm_rate": pytest.approx(2 / 8)}


def test_single_class_prediction_is_flagged():
    rep = accuracy_block(Y, TYPES, np.ones(len(Y)), 0.5, n_boot=50)
    assert any("SINGLE-CLASS" in w for w in rep["warnings"])
    assert [(a["kind"], a["severity"]) for a in rep["alerts"]] == [("single_class", "severe")]
    assert rep["warnings"] == [a["message"] for a in rep["alerts"]]


def test_latency_stats_percentiles():
    ms = np.arange(1, 101, dtype=float)
    st = latency_stats(ms)
    assert st["p50"] == pytest.approx(np.percentile(ms, 50))
    assert st["p95"] == pytest.approx(np.percentile(ms, 95))
    assert st["p99"] == pytest.approx(np.percentile(ms, 99))
    assert st["throughput_ips"] == pytest.approx(1000 / 50.5)


def test_compare_flags_auroc_drop_and_slowdown(fake_result_pair):
    ref, worse = fake_result_pair
    same = compare(ref, ref)
    assert same["ok"] and same["regressions"] == []
    c = compare(worse, ref)
    assert not c["ok"]
    text = " ".join(c["regressions"])
    assert "TFLite int8: AUROC" in text          # scores made much worse
    assert not any(r.startswith("Keras") for r in c["regressions"])  # unchanged variant not flagged
    # float32 is 2x slower in absolute ms but its ratio to its own invoke() is unchanged: on a matching
    # machine that is an amber warning (a busy machine does the same), not a regression.
    assert "TFLite float32" not in text
    slow = [a for a in c["alerts"] if a["variant"] == "fp32"]
    assert [(a["kind"], a["severity"]) for a in slow] == [("latency_absolute", "warning")]
    assert "2.00x the reference" in slow[0]["message"]


@pytest.fixture
def fake_result_pair():
    from tests.fixtures.bench import fake_bench_result

    ref = fake_bench_result()
    rng = np.random.default_rng(5)
    y = np.array(ref["per_image"]["labels"])
    scores = {v: np.array(s) for v, s in ref["per_image"]["scores"].items()}
    scores["int8"] = np.clip(scores["int8"] * 0.3 + rng.uniform(0, 0.7, len(y)), 0, 1)
    worse = fake_bench_result(scores, p50={"keras": 40.0, "fp32": 16.0, "int8": 3.0})
    assert worse["variants"]["int8"]["accuracy"]["auroc"] < ref["variants"]["int8"]["accuracy"]["auroc"] - 0.05
    return ref, worse


def test_type_accuracy_counts_caught_defects_only_overall_and_per_type():
    from benchmarks.bench import type_accuracy

    # TYPES / S at 0.5: caught defects are indices 6 (crack), 7 (crack), 8 (hole), 10 (hole), 12 (crack)
    pred = ["good"] * 6 + ["crack", "hole", "hole", "crack", "unknown", "crack", "crack", "hole"]
    got = type_accuracy(TYPES, S >= 0.5, pred)
    assert (got["type_accuracy"], got["type_accuracy_n"]) == (pytest.approx(3 / 5), 5)
    assert got["type_accuracy_per_type"] == {"crack": {"n": 3, "accuracy": pytest.approx(2 / 3)},
                                             "hole": {"n": 2, "accuracy": 0.5}}
    rep = accuracy_block(Y, TYPES, S, 0.5, n_boot=50, pred_types=pred)
    assert {k: rep[k] for k in got} == got
    assert type_accuracy(TYPES, S >= 2.0, pred) == {}  # nothing caught: no type accuracy, not a zero
    assert "type_accuracy" not in accuracy_block(Y, TYPES, S, 0.5, n_boot=50)  # a model without a type head
