"""Every file of the report is written, self-contained, with the honesty warnings where a reader looks."""
import csv
import json
import re

import numpy as np

from benchmarks.bench import write_outputs
from benchmarks.compare import compare, slim
from benchmarks.tables import format_table
from tests.fixtures.bench import fake_bench_result


def _no_external_refs(page):
    # Every src/href must be a data URI or a relative link: nothing fetched from elsewhere.
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    return [r for r in refs if not r.startswith("data:")] + re.findall(r"https?://", page)


def test_write_outputs_writes_every_file(tmp_path):
    result = fake_bench_result()
    files = write_outputs(result, tmp_path, progress=False)
    for name in ("bench.json", "bench.csv", "table.txt", "report.html", "accuracy_latency.png", "roc.png",
                 "confusion.png", "per_type.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    for png in files["png"].values():
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "bench.json").read_text())
    assert set(data["variants"]) == {"keras", "fp32", "int8"}
    rows = list(csv.DictReader(open(tmp_path / "bench.csv")))
    assert [r["variant"] for r in rows] == ["keras", "fp32", "int8"]
    assert float(rows[2]["auroc"]) == data["variants"]["int8"]["accuracy"]["auroc"]
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(files["png"])
    assert _no_external_refs(page) == []
    assert "majority" in page.lower() and "AUROC" in page
    assert "banner green" in page and "banner red" not in page


def test_single_class_variant_gets_red_banner(tmp_path):
    y_scores = fake_bench_result()["per_image"]["scores"]
    scores = {"keras": np.array(y_scores["keras"]), "int8": np.ones(len(y_scores["keras"]))}
    result = fake_bench_result(scores)
    write_outputs(result, tmp_path, progress=False)
    data = json.loads((tmp_path / "bench.json").read_text())
    assert any("TFLite int8: SINGLE-CLASS MODEL" in w for w in data["warnings"])
    page = (tmp_path / "report.html").read_text()
    banner = page.split('<div class="banner red">', 1)[1].split("</div>", 1)[0]
    assert "SINGLE-CLASS MODEL" in banner and "TFLite int8" in banner
    assert 'class="bad"' in page
    assert "WARNING: TFLite int8: SINGLE-CLASS" in (tmp_path / "table.txt").read_text()


def test_table_has_all_columns_and_baseline():
    result = fake_bench_result()
    text = format_table(result)
    header = text.splitlines()[1]
    for col in ("Format", "Size MB", "AUROC [CI]", "Bal.acc [CI]", "Recall", "Acc (baseline)", "ms p50", "ms p95",
                "invoke ms", "litert-benchmark ms", "agree"):
        assert col in header
    int8_line = next(line for line in text.splitlines() if line.startswith("TFLite int8"))
    acc = result["variants"]["int8"]["accuracy"]
    assert f"({acc['majority_baseline']:.3f})" in int8_line
    assert "skipped Edge TPU int8" in text


def test_regression_shows_in_html_and_table(tmp_path):
    ref = fake_bench_result()
    worse = fake_bench_result(p50={"keras": 40.0, "fp32": 8.0, "int8": 9.0})
    worse["comparison"] = compare(worse, ref)
    worse["comparison"]["reference_file"] = "ref.json"
    write_outputs(worse, tmp_path, progress=False)
    assert "REGRESSION: TFLite int8: p50" in (tmp_path / "table.txt").read_text()
    page = (tmp_path / "report.html").read_text()
    assert "REGRESSION" in page.split('<div class="banner red">', 1)[1].split("</div>", 1)[0]


def test_slim_reference_has_numbers_only():
    ref = slim(fake_bench_result())
    assert "per_image" not in ref and "root" not in ref["test"]
    assert ref["variants"]["fp32"]["file"] == "model_fp32.tflite"
    assert len(json.dumps(ref)) < 40_000
    # still comparable
    assert compare(fake_bench_result(), ref)["ok"]
