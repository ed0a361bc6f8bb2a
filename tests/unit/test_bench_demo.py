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


# ---------------------------------------------------------------------------- the landing page (index.html)
def _committed_demo(tmp_path):
    """The committed reference results of the full demo, laid out as a demo folder would hold them."""
    import numpy as np
    from PIL import Image

    results = {}
    for task in ("classifier", "anomaly"):
        r = json.loads(demo.reference_path("hazelnut", task).read_text())
        bench = tmp_path / "runs" / task / "bench"
        bench.mkdir(parents=True)
        (bench / "report.html").write_text("<html></html>")
        r["outputs"] = {"html": str(bench / "report.html"), "png": {}}
        if task == "anomaly":
            Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(bench / "samples.png")
            r["outputs"]["png"]["samples"] = str(bench / "samples.png")
        results[task] = r
    summary = {"kind": "hazelnut", "quick": False, "weights": "/opt/w/mobilenet v2.h5",
               "stage_seconds": {"synth": 8.0, "split": 0.2, "train_classifier": 64.0, "train_anomaly": 25.0,
                                 "export": 141.0, "bench": 43.0, "total": 283.0},
               "bars": {"anomaly_int8_auroc>=0.98": True, "classifier_int8_auroc>=0.95": False}}
    return summary, results


def _rows(page):
    import re

    out = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        out.append([re.sub(r"<[^>]+>", "", td).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)])
    return out


def test_index_shows_both_runs_table_samples_stages_and_commands(tmp_path):
    import re

    from benchmarks.demo_index import write_demo_index

    summary, results = _committed_demo(tmp_path)
    index = write_demo_index(summary, results, demo.next_commands(summary["weights"]), tmp_path / "index.html")
    page = index.read_text()
    rows = _rows(page)
    # One row per variant of each run, in the run's order, with the run's own numbers.
    for task, r in results.items():
        start = next(i for i, row in enumerate(rows) if row and row[0].startswith(f"{task} model"))
        body = rows[start + 1: start + 1 + len(r["variants"])]
        assert [row[0] for row in body] == [v["title"] for v in r["variants"].values()]
        for row, v in zip(body, r["variants"].values()):
            a = v["accuracy"]
            assert row[1] == f"{v['size_mb']:.2f}"
            assert row[2].startswith(f"{a['auroc']:.3f}") and row[3].startswith(f"{a['balanced_accuracy']:.3f}")
            assert row[4] == f"{a['accuracy']:.3f} ({a['majority_baseline']:.3f})"
            assert row[6] == f"{v['latency']['p50']:.2f}"
    assert "TFLite int8" in page and "0.592" in page and "0.630" in page
    # The anomaly sample grid is embedded, so the page is one file.
    img = re.search(r'<img alt="anomaly run: sample predictions with heat maps" src="([^"]+)"', page)
    assert img and img.group(1).startswith("data:image/png;base64,")
    # Stage times, longest first in the bar scale, total last.
    stages = re.sub(r"<[^>]+>", " ", page.split('<div class="stages">', 1)[1].split("</section>", 1)[0])
    assert re.search(r"export all variants\s+141 s", stages) and re.search(r"total\s+283 s", stages)
    assert 'style="width:100.0%"' in page      # export, the longest stage, fills the bar
    # Commands to try next, with this demo's weights kept as they were given (quoted for the shell).
    for cmd in ("edgeinspect data split parts", "edgeinspect train --data parts", "edgeinspect export runs/train/parts",
                "edgeinspect predict runs/train/parts/export/model_int8.tflite", "edgeinspect watch --model"):
        assert cmd in page, cmd
    assert "W=&#x27;/opt/w/mobilenet v2.h5&#x27;" in page
    # Links are relative and exist; nothing is fetched from elsewhere.
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert "runs/anomaly/bench/report.html" in hrefs and "runs/classifier/bench/report.html" in hrefs
    assert all((tmp_path / h).is_file() for h in hrefs if h != "demo_summary.json")
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    assert "anomaly_int8_auroc&gt;=0.98: ok" in page and "classifier_int8_auroc&gt;=0.95: missed" in page
    assert "banner red" not in page and "banner green" in page


def test_index_carries_the_runs_alerts_by_severity(tmp_path):
    from benchmarks.compare import compare
    from benchmarks.demo_index import render_demo_index

    summary, results = _committed_demo(tmp_path)
    ref = json.loads(json.dumps(results["classifier"]))
    ref["machine"]["cpu"] = "Some other CPU"
    for v in ref["variants"].values():           # the reference machine was 3x faster
        v["latency"]["p50"] /= 3
        if v.get("invoke"):
            v["invoke"]["p50"] /= 3
    results["classifier"]["comparison"] = compare(results["classifier"], ref)
    results["anomaly"]["alerts"] = [{"kind": "single_class", "severity": "severe", "variant": "int8",
                                     "message": "TFLite int8: calls every image good"}]
    page = render_demo_index(summary, results, demo.next_commands(), tmp_path)
    red = page.split('<div class="banner red">', 1)[1].split("</div>", 1)[0]
    assert "anomaly: TFLite int8: calls every image good" in red and "classifier" not in red
    grey = page.split('<div class="banner grey">', 1)[1].split("</div>", 1)[0]
    assert "another machine" in grey and "Some other CPU" in grey


def test_quick_index_says_it_is_a_smoke_test_and_survives_missing_pictures(tmp_path):
    from benchmarks.demo_index import render_demo_index

    summary, results = _committed_demo(tmp_path)
    summary["quick"] = True
    results["anomaly"]["outputs"]["png"] = {}
    page = render_demo_index(summary, results, demo.next_commands(), tmp_path)
    assert "quick smoke run" in page and "--quick is a smoke test" in page
    assert "No sample grid" in page and "<img" not in page
    assert "(they do not apply to --quick)" in page


def test_next_commands_use_real_subcommands_and_options():
    import shlex

    from edge.cli import main

    cmds = [c for _, c in demo.next_commands("/x/w.h5") if c and c.startswith("edgeinspect ")]
    assert {c.split()[1] for c in cmds} >= {"data", "train", "export", "bench", "predict", "watch"}
    for c in cmds:
        words = shlex.split(c, comments=True)[1:]
        cmd = main.get_command(None, words[0])
        if words[0] == "data":
            cmd, words = cmd.get_command(None, words[1]), words[1:]
        assert cmd is not None, c
        # Click parses the words as it would on a shell: unknown options, bad values or a missing
        # required argument raise here, before anything runs.
        ctx = cmd.make_context(words[0], words[1:])
        assert ctx.params, c
