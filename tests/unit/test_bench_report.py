"""Every file of the report is written, self-contained, with the honesty warnings where a reader looks."""
import csv
import json
import re

import numpy as np

from benchmarks.alerts import export_alerts
from benchmarks.bench import write_outputs
from benchmarks.compare import compare, slim
from benchmarks.tables import format_table
from tests.fixtures.bench import fake_bench_result

OTHER_CPU = {"cpu": "Reference CPU 9000 (not this one)"}


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
    # int8 got 3x slower while float32 did not: int8 / float32 measured in the same run regressed.
    assert "REGRESSION: TFLite int8: latency is" in (tmp_path / "table.txt").read_text()
    page = (tmp_path / "report.html").read_text()
    assert "REGRESSION" in page.split('<div class="banner red">', 1)[1].split("</div>", 1)[0]


def test_slim_reference_has_numbers_only():
    ref = slim(fake_bench_result())
    assert "per_image" not in ref and "root" not in ref["test"]
    assert ref["variants"]["fp32"]["file"] == "model_fp32.tflite"
    assert len(json.dumps(ref)) < 40_000
    # still comparable
    assert compare(fake_bench_result(), ref)["ok"]


def _banner(page, colour):
    parts = page.split(f'<div class="banner {colour}">')
    return " ".join(p.split("</div>", 1)[0] for p in parts[1:])


def _compared(result, ref, tmp_path):
    result["comparison"] = compare(result, ref)
    result["comparison"]["reference_file"] = "ref.json"
    write_outputs(result, tmp_path, progress=False)
    return (tmp_path / "report.html").read_text(), (tmp_path / "table.txt").read_text()


def test_reference_from_another_machine_3x_faster_is_a_grey_note_not_a_regression(tmp_path):
    # Same model, same ratios, but the reference CPU was 3x faster in absolute ms.
    ref = fake_bench_result(p50={"keras": 40.0 / 3, "fp32": 8.0 / 3, "int8": 3.0 / 3}, machine=OTHER_CPU)
    run = fake_bench_result()
    page, table = _compared(run, ref, tmp_path)
    comp = run["comparison"]
    assert comp["ok"] and comp["regressions"] == [] and comp["same_machine"] is False
    assert comp["variants"]["int8"]["p50_ratio"] > 2.9       # the absolute figure is still reported ...
    assert [a["kind"] for a in comp["alerts"]] == ["other_machine"]   # ... but only as a note
    assert "banner red" not in page and "banner amber" not in page and 'class="bad"' not in page
    grey = _banner(page, "grey")
    assert "another machine" in grey and "Reference CPU 9000" in grey
    assert "absolute milliseconds are not compared" in grey
    assert "REGRESSION" not in table and "note: reference measured on another machine" in table
    assert "no regression against ref.json" in table


def test_auroc_drop_and_ratio_regression_stay_red_against_another_machine(tmp_path):
    ref = fake_bench_result(p50={"keras": 40.0 / 3, "fp32": 8.0 / 3, "int8": 3.0 / 3}, machine=OTHER_CPU)
    scores = {v: np.array(s) for v, s in ref["per_image"]["scores"].items()}
    scores["int8"] = 1.0 - scores["int8"]                     # int8 now ranks parts backwards
    # float32's wrapper now costs 3x its bare invoke() (0.9 before): edgeinspect's own path got slower.
    run = fake_bench_result(scores, invoke_share={"fp32": 1 / 3})
    page, table = _compared(run, ref, tmp_path)
    regs = run["comparison"]["regressions"]
    assert any(r.startswith("TFLite int8: AUROC") for r in regs)
    assert any(r.startswith("TFLite float32: latency is 3.00x its bare invoke() in this run, 1.11x") for r in regs)
    assert not any(r.startswith("Keras") for r in regs)
    red = _banner(page, "red")
    assert "REGRESSION: TFLite int8: AUROC" in red and "REGRESSION: TFLite float32: latency is 3.00x" in red
    assert "another machine" in _banner(page, "grey")
    assert "REGRESSION: TFLite float32: latency is 3.00x its bare invoke()" in table


def test_int8_losing_its_speedup_over_float32_is_a_regression():
    ref = fake_bench_result(machine=OTHER_CPU)                # int8 3 ms vs float32 8 ms
    run = fake_bench_result(p50={"keras": 120.0, "fp32": 24.0, "int8": 24.0})   # 3x slower CPU, int8 no faster
    c = compare(run, ref)
    assert [a["kind"] for a in c["alerts"] if a["severity"] == "severe"] == ["latency_ratio"]
    now, then = (r["variants"]["int8"]["latency"]["min"] / r["variants"]["fp32"]["latency"]["min"] for r in (run, ref))
    assert 0.98 < now < 1.02 and 0.33 < then < 0.39
    assert c["regressions"] == [f"TFLite int8: latency is {now:.2f}x float32's in this run, {then:.2f}x in the "
                                f"reference ({now / then:.2f}x worse, limit 1.5x; fastest call of each)"]


def test_same_machine_slowdown_in_absolute_ms_is_amber(tmp_path):
    ref = fake_bench_result()
    run = fake_bench_result(p50={"keras": 80.0, "fp32": 16.0, "int8": 6.0})   # everything 2x: a busy machine
    page, table = _compared(run, ref, tmp_path)
    comp = run["comparison"]
    assert comp["same_machine"] and comp["ok"] and comp["note"] is None
    assert {a["variant"] for a in comp["alerts"]} == {"keras", "fp32", "int8"}
    assert {(a["kind"], a["severity"]) for a in comp["alerts"]} == {("latency_absolute", "warning")}
    assert "banner red" not in page and "on a matching machine" in _banner(page, "amber")
    assert "warning: TFLite int8: p50" in table and "REGRESSION" not in table


def test_colour_comes_from_the_alert_severity_not_its_wording(tmp_path):
    y_scores = fake_bench_result()["per_image"]["scores"]
    result = fake_bench_result({"keras": np.array(y_scores["keras"]), "int8": np.ones(len(y_scores["keras"]))})
    # Reword the single-class warning so no old keyword is left in it: it must stay red.
    for a in result["alerts"] + result["variants"]["int8"]["accuracy"]["alerts"]:
        a["message"] = "TFLite int8: every part is called one way"
    # ... and a note that happens to contain the old red keywords stays grey.
    result["comparison"] = {"regressions": [], "rules": {"auroc_drop": 0.02, "latency_ratio": 1.5},
                            "alerts": [{"kind": "other_machine", "severity": "note",
                                        "message": "SINGLE-CLASS REGRESSION no better than (just words)"}]}
    write_outputs(result, tmp_path, progress=False)
    page = (tmp_path / "report.html").read_text()
    assert "every part is called one way" in _banner(page, "red")
    assert "just words" in _banner(page, "grey") and "just words" not in _banner(page, "red")
    assert 'class="bad"' in page


def test_reference_written_before_alerts_existed_still_renders(tmp_path):
    result = fake_bench_result({"keras": np.linspace(0, 1, 40), "int8": np.ones(40)})
    result.pop("alerts")
    for row in result["variants"].values():
        row["accuracy"].pop("alerts")
    write_outputs(result, tmp_path, progress=False)
    assert "SINGLE-CLASS MODEL" in _banner((tmp_path / "report.html").read_text(), "red")


def test_export_parity_failure_is_a_severe_alert(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "export_report.json").write_text(json.dumps({"status": "FAILED", "variants": {
        "fp32": {"status": "OK", "file": "model_fp32.tflite", "parity": {"reasons": []}},
        "int8": {"status": "FAILED", "file": "model_int8.failed.tflite",
                 "parity": {"status": "FAILED", "reasons": ["agreement 0.80 < 0.98"]}},
        "edgetpu": {"file": None, "status": "FAILED", "error": "int8 variant failed parity; not compiled"}}}))
    alerts = export_alerts(tmp_path)
    assert [(a["kind"], a["severity"], a["variant"]) for a in alerts] == [
        ("parity_failed", "severe", "int8"), ("export_failed", "severe", "edgetpu")]
    assert alerts[0]["message"] == ("TFLite int8: failed the export parity check (agreement 0.80 < 0.98); "
                                    "kept aside as model_int8.failed.tflite, not benchmarked")
    assert "int8 variant failed parity" in alerts[1]["message"]
    assert export_alerts(tmp_path / "nope") == []
