"""Parity numbers, the FAILED rule, the table, and the CLI's one-line errors (no conversion here)."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import main
from export import parity
from export.convert import parse_variants
from export.errors import ExportError


def _ref(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.array([0] * (n // 2) + [1] * (n // 2))
    score = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.1, n), 0, 1).astype(np.float32)
    types = rng.dirichlet([1, 1, 1], n).astype(np.float32)
    return y, {"score": score, "types": types}


def test_identical_outputs_agree_fully():
    y, ref = _ref()
    res = parity.judge(parity.compare(ref, {k: v.copy() for k, v in ref.items()}, y, 0.5, "classifier"))
    assert res["agreement"] == 1.0 and res["type_agreement"] == 1.0
    assert res["flips"] == {"n": 0, "defective": 0, "good": 0, "now_defective": 0, "now_good": 0}
    assert res["max_abs_score_diff"] == 0.0 and res["spearman"] == pytest.approx(1.0)
    assert res["auroc_drop"] == 0.0 and res["status"] == "OK" and res["reasons"] == []
    assert res["majority_baseline"] == 0.5 and "balanced_accuracy" in res


def test_flipped_verdicts_and_types_fail():
    y, ref = _ref()
    got = {"score": ref["score"].copy(), "types": ref["types"].copy()}
    near = np.argsort(np.abs(ref["score"] - 0.5))[:3]  # push the 3 closest-to-threshold scores across it
    got["score"][near] = np.where(ref["score"][near] >= 0.5, 0.49, 0.51)
    res = parity.judge(parity.compare(ref, got, y, 0.5, "classifier"), min_agreement=0.98)
    assert res["agreement"] == pytest.approx(37 / 40)
    assert res["status"] == "FAILED" and any("verdict agreement 0.9250 < 0.98" in r for r in res["reasons"])
    f = res["flips"]
    flipped_defective = int(y[near].sum())
    assert f["n"] == 3 and f["defective"] == flipped_defective and f["good"] == 3 - flipped_defective
    assert f["now_defective"] == int((ref["score"][near] < 0.5).sum()) and f["now_good"] == 3 - f["now_defective"]
    assert f["max_float_distance"] == pytest.approx(float(np.abs(ref["score"][near] - 0.5).max()))
    assert f"3 flipped ({flipped_defective} defective, {3 - flipped_defective} good), every float score within" \
        in res["reasons"][0]
    got2 = {"score": ref["score"].copy(), "types": ref["types"][:, ::-1].copy()}
    res2 = parity.judge(parity.compare(ref, got2, y, 0.5, "classifier"))
    assert res2["agreement"] == 1.0 and res2["type_agreement"] < 0.98 and res2["status"] == "FAILED"


def test_auroc_drop_fails_and_impossible_agreement_fails():
    y, ref = _ref()
    got = {"score": ref["score"][::-1].copy(), "types": ref["types"]}
    res = parity.judge(parity.compare(ref, got, y, 0.5, "classifier"), min_agreement=0.0, max_auroc_drop=0.01)
    assert res["auroc_drop"] > 0.5 and res["status"] == "FAILED" and "AUROC drop" in res["reasons"][0]
    same = parity.compare(ref, ref, y, 0.5, "classifier")
    assert parity.judge(same, min_agreement=1.01)["status"] == "FAILED"


def test_anomaly_map_difference_and_single_class_nan():
    y = np.zeros(6, int)
    ref = {"score": np.linspace(0.1, 0.4, 6), "map": np.zeros((6, 4, 4), np.float32)}
    got = {"score": ref["score"] + 0.01, "map": np.full((6, 4, 4), 0.25, np.float32)}
    res = parity.judge(parity.compare(ref, got, y, 0.5, "anomaly"))
    assert res["map_max_abs_diff"] == pytest.approx(0.25) and math.isnan(res["auroc"])
    assert res["status"] == "OK"  # an undefined AUROC is not a drop
    assert parity.jsonable(res)["auroc"] is None
    json.dumps(parity.jsonable(res))


def test_table_has_the_columns_and_the_float_baseline():
    report = {"task": "classifier", "parity_split": "test",
              "float_reference": {"n": 40, "n_defective": 20, "auroc": 0.97, "balanced_accuracy": 0.9,
                                  "majority_baseline": 0.5, "majority_class": "good", "warnings": []},
              "variants": {"int8": {"size_mb": 0.61, "status": "FAILED",
                                    "parity": {"agreement": 0.99, "type_agreement": 0.95, "auroc": 0.96,
                                               "balanced_accuracy": 0.9, "max_abs_score_diff": 0.05,
                                               "spearman": 0.99}}}}
    text = parity.format_table(report)
    head = text.splitlines()[0]
    for col in ("Variant", "Size MB", "Agree", "AUROC", "Bal.acc", "max|dscore|", "Spearman", "Status"):
        assert col in head
    row = text.splitlines()[2]
    assert row.startswith("int8") and "0.9500" in row and "FAILED" in row  # min of verdict/type agreement
    assert "majority baseline 0.5000" in text


def test_parse_variants():
    assert parse_variants(["int8", "fp32"]) == ["fp32", "int8"]
    assert parse_variants(["edgetpu"]) == ["int8", "edgetpu"]
    assert parse_variants([]) == ["fp32", "fp16", "dynamic", "int8"]
    with pytest.raises(ExportError, match="unknown variant.*'int4'"):
        parse_variants(["int4"])


def _one_line_error(result):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    return lines[0]


def test_cli_run_without_run_json(tmp_path):
    line = _one_line_error(CliRunner().invoke(main, ["export", str(tmp_path)]))
    assert "no run.json" in line and str(tmp_path) in line


def test_cli_run_without_model(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"task": "classifier"}))
    line = _one_line_error(CliRunner().invoke(main, ["export", str(tmp_path)]))
    assert "no model.keras" in line


def test_cli_unknown_variant(tmp_path):
    line = _one_line_error(CliRunner().invoke(main, ["export", str(tmp_path), "--variant", "int4"]))
    assert "unknown variant" in line and "int4" in line and "fp16" in line


def test_cli_edgetpu_without_compiler(tmp_path, monkeypatch):
    (tmp_path / "run.json").write_text(json.dumps({"task": "classifier", "labels": ["good", "x"],
                                                   "input_size": [96, 96], "threshold": 0.5}))
    (tmp_path / "model.keras").write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    line = _one_line_error(CliRunner().invoke(main, ["export", str(tmp_path), "--edgetpu"]))
    assert "edgetpu_compiler" in line and "apt-get install edgetpu-compiler" in line


def test_defect_type_agreement_has_its_own_bar():
    base = {"agreement": 1.0, "type_agreement": 0.96, "auroc_drop": 0.0}
    assert parity.judge(dict(base))["status"] == "OK"  # 0.96 >= the type bar 0.95, below the verdict bar 0.98
    res = parity.judge(dict(base, type_agreement=0.90))
    assert res["status"] == "FAILED" and res["reasons"] == ["defect-type agreement 0.9000 < 0.95"]
    res = parity.judge(dict(base), min_type_agreement=0.99)
    assert res["status"] == "FAILED" and "defect-type" in res["reasons"][0]
    res = parity.judge(dict(base, agreement=0.97))
    assert res["reasons"] == ["verdict agreement 0.9700 < 0.98"]


def test_anomaly_with_a_type_head_gets_type_agreement_beside_the_map():
    y, ref = _ref()
    ref = {**ref, "map": np.zeros((40, 4, 4), np.float32)}
    got = {"score": ref["score"].copy(), "map": ref["map"] + 0.1, "types": ref["types"][:, ::-1].copy()}
    res = parity.judge(parity.compare(ref, got, y, 0.5, "anomaly"))
    assert res["map_max_abs_diff"] == pytest.approx(0.1) and res["agreement"] == 1.0
    assert res["type_agreement"] < 0.95 and res["status"] == "FAILED"
    assert res["reasons"] == [f"defect-type agreement {res['type_agreement']:.4f} < 0.95"]
    same = parity.compare(ref, {k: v.copy() for k, v in ref.items()}, y, 0.5, "anomaly")
    assert same["type_agreement"] == 1.0 == same["type_agreement_all"]
    plain = parity.compare({"score": ref["score"], "map": ref["map"]}, {"score": ref["score"], "map": ref["map"]},
                           y, 0.5, "anomaly")
    assert "type_agreement" not in plain  # a good-only model has no type to agree on
    with pytest.raises(ExportError, match="has a type output but the converted file has none"):
        parity.compare(ref, {"score": ref["score"], "map": ref["map"]}, y, 0.5, "anomaly")


class _FakeInterpreter:
    """get_output_details() of a converted model with these shapes, and no signature (the shape path)."""

    def __init__(self, shapes):
        self.shapes = shapes

    def get_output_details(self):
        return [{"index": 10 + i, "shape": np.array(s), "quantization": (0.0, 0)} for i, s in enumerate(self.shapes)]

    def _get_full_signature_list(self):
        return {}


@pytest.mark.parametrize("shapes,want", [
    ([(1, 12, 12), (1, 1)], {"map": 0, "score": 1}),
    ([(1, 12, 12), (1, 4), (1, 1)], {"map": 0, "types": 1, "score": 2}),
    ([(1, 4), (1, 1), (1, 12, 12)], {"types": 0, "score": 1, "map": 2}),
])
def test_anomaly_outputs_are_told_apart_by_shape(shapes, want):
    from export.model_meta import output_indices

    assert output_indices(_FakeInterpreter(shapes), "anomaly", 4) == want


@pytest.mark.parametrize("shapes,match", [
    ([(1, 12, 12), (1, 4), (1, 1)], "type output has 4 classes but run.json lists 3 labels"),
    ([(1, 12, 12), (1, 1), (1, 1)], "cannot tell the converted model's outputs apart"),
    ([(1, 12, 12), (1, 4), (1, 4), (1, 1)], "has 4 outputs"),
    ([(1, 12, 12)], "has 1 outputs"),
])
def test_anomaly_outputs_that_do_not_fit_are_one_line_errors(shapes, match):
    from export.model_meta import output_indices

    with pytest.raises(ExportError, match=match):
        output_indices(_FakeInterpreter(shapes), "anomaly", 3)
