"""benchmarks/realdata.py's arithmetic and plan: the table a plant engineer reads must say what the model did,
over the splits it was run on, and every mode must have been run on the same split."""
import json
import statistics
from pathlib import Path

import click
import pytest

from benchmarks.realdata_plan import Repeat, check_args, parse_list, plan
from benchmarks.realdata_table import aggregate, fmt, format_table, mean_sd, summary, type_accuracy


def test_summary_counts_false_rejects_and_misses_at_the_given_threshold():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.3, 0.9, 0.4, 0.8, 0.7]
    at_half = summary(y, s, 0.5)
    assert at_half["false_reject"] == pytest.approx(0.25) and at_half["specificity"] == pytest.approx(0.75)
    assert at_half["recall"] == pytest.approx(0.75)
    assert at_half["balanced_accuracy"] == pytest.approx(0.75) and at_half["majority_baseline"] == 0.5
    # the int8 file decides at its own threshold: a higher one rejects fewer good parts and misses more
    strict = summary(y, s, 0.65)
    assert strict["false_reject"] == 0.0 and strict["recall"] == pytest.approx(0.75)
    assert summary(y, s, 0.85)["recall"] == pytest.approx(0.25)


def test_table_shows_float_and_int8_beside_the_baseline_and_the_target():
    row = {"set": "casting", "evidence": "patch+global", "float": summary([0, 1], [0.2, 0.9], 0.5),
           "int8": summary([0, 1], [0.3, 0.8], 0.5), "target_false_reject": 0.01, "parity": "OK",
           "agreement": 1.0, "train_s": 61.2, "export_s": 80.0}
    text = format_table([row])
    head, rule, line = text.splitlines()
    assert "bal.acc int8 (baseline)" in head and "false-reject (target)" in head
    assert "casting" in line and "(0.500)" in line and "0.000 (0.010)" in line and "OK (1.000)" in line


def test_update_benchmark_holds_back_every_other_fitted_good_image(tmp_path):
    from benchmarks.realdata_update import half_manifest
    from trainer.data.run_contract import load_manifest, save_manifest
    from trainer.data.split import make_split
    from trainer.data.synth import generate

    root = generate(tmp_path / "d", size=48, n_train=10, n_test_good=2, n_per_defect=1, seed=0, progress=False)
    full = save_manifest(make_split(root, "good-only", seed=0), tmp_path / "full.json")
    counts = half_manifest(full, tmp_path / "half.json", tmp_path / "second")
    half, whole = load_manifest(tmp_path / "half.json"), load_manifest(full)
    fitted = [f for f in whole["files"] if f["split"] in ("train", "val")]
    kept = {f["path"] for f in half["files"]}
    links = sorted((tmp_path / "second").iterdir())
    assert counts == {"fitted_parent": 5, "added": 5} and len(links) == 5
    assert all(p.is_symlink() and p.resolve().is_relative_to(root.resolve()) for p in links)
    assert {f["path"] for f in fitted} - kept == {str(p.resolve().relative_to(root.resolve())) for p in links}
    assert [f for f in half["files"] if f["split"] == "test"] == [f for f in whole["files"] if f["split"] == "test"]


def _row(name="casting", mode="classifier", evidence="—", auroc=0.98, bal=0.95, typed=None, **kw):
    int8 = {"auroc": auroc, "balanced_accuracy": bal, "accuracy": bal, "majority_baseline": 0.6, "recall": 0.9,
            "specificity": 1.0, "false_reject": 0.0}
    return {"set": name, "mode": mode, "evidence": evidence, "float": None, "int8": int8, "type_accuracy": typed,
            "target_false_reject": None, "parity": "OK", "agreement": 1.0, "train_s": 10.0, "export_s": 20.0, **kw}


def test_mean_and_sample_sd_over_repeats_print_as_mean_plus_minus_sd():
    vals = [0.978, 0.981, 0.984]
    agg = mean_sd(vals)
    assert agg["mean"] == pytest.approx(0.981) and agg["sd"] == pytest.approx(statistics.stdev(vals))
    assert agg["n"] == 3 and fmt(agg) == "0.981 ± 0.003"
    # one split has no spread to show; undefined values (no defect caught, AUROC of one class) are left out
    assert fmt(mean_sd([0.9812])) == "0.981" and mean_sd([0.5, None, float("nan")])["n"] == 1
    assert fmt(mean_sd([None, float("nan")])) == "—"


def test_repeats_of_a_set_and_mode_become_one_line_and_modes_stay_apart():
    rows = [_row(auroc=0.97, bal=0.90, fold=0), _row(auroc=0.99, bal=0.94, fold=1),
            _row(mode="anomaly", evidence="patch+global", auroc=0.95, bal=0.80, fold=0, parity="FAILED",
                 agreement=0.98)]
    aggs = aggregate(rows)
    assert [(a["mode"], a["repeats"]) for a in aggs] == [("classifier", 2), ("anomaly", 1)]
    assert aggs[0]["int8"]["auroc"]["mean"] == pytest.approx(0.98)
    head, rule, cls, ano = format_table(rows).splitlines()
    assert "splits" in head and "type acc (caught)" in head
    assert "0.980 ± 0.014" in cls and "0.920 ± 0.028 (0.600)" in cls and "OK 2/2 (1.000 ± 0.000)" in cls
    assert "0.950 " in ano and "±" not in ano and "FAILED (0.980)" in ano
    # a model without type output, or one type, says so with a dash, not with a number
    assert cls.split(" | ")[11].strip() == "—"


def test_type_accuracy_counts_caught_defects_only_per_type():
    test = [{"type": t} for t in ("good", "crack", "crack", "crack", "hole", "hole")]
    rec = [("defective", "crack"),            # a false reject: not a defect, not counted
           ("defective", "crack"), ("defective", "hole"), ("good", "good"),  # the miss is not counted
           ("defective", "hole"), ("defective", "unknown")]                 # "unknown" is a wrong type
    records = [{"verdict": v, "defect_type": d} for v, d in rec]
    typed, why = type_accuracy(test, records, n_types=2)
    assert why is None and typed["n"] == 4 and typed["accuracy"] == pytest.approx(0.5)
    assert typed["per_type"] == {"crack": {"accuracy": 0.5, "n": 2}, "hole": {"accuracy": 0.5, "n": 2}}
    anomaly = [{"verdict": v, "defect_type": None} for v, _ in rec]
    assert type_accuracy(test, anomaly, n_types=2) == (None, "the model names no types")
    assert type_accuracy(test, records, n_types=1) == (None, "one defect type")
    missed = [{"verdict": "good", "defect_type": "good"} for _ in rec]
    assert type_accuracy(test, missed, n_types=2) == (None, "no defect caught")


def test_per_type_type_accuracy_is_aggregated_over_splits_in_its_own_table():
    def typed(crack, hole):
        return {"accuracy": (crack + hole) / 2, "n": 4,
                "per_type": {"crack": {"accuracy": crack, "n": 2}, "hole": {"accuracy": hole, "n": 2}}}

    rows = [_row(typed=typed(1.0, 0.5), seed=0), _row(typed=typed(0.5, 0.5), seed=1), _row(typed=None, seed=2)]
    agg = aggregate(rows)[0]
    assert agg["type_accuracy"]["mean"] == pytest.approx(0.625) and agg["type_accuracy"]["n"] == 2
    assert agg["type_accuracy_caught"] == 8 and agg["type_accuracy_note"] is None
    assert agg["type_accuracy_per_type"]["crack"]["mean"] == pytest.approx(0.75)
    assert agg["type_accuracy_per_type"]["hole"]["sd"] == 0.0
    text = format_table(rows)
    assert "0.625 ± 0.177 (2/3 splits)" in text.splitlines()[2]   # the third split's model caught nothing
    assert "crack 0.750 ± 0.354 (2/3 splits), hole 0.500 ± 0.000 (2/3 splits)" in text.split("\n\n")[1]
    assert "(2/" not in format_table(rows[:2])


@pytest.mark.parametrize("mode", ["combined", "classifier"])
def test_good_only_with_a_supervised_mode_is_a_clear_error(mode):
    with pytest.raises(click.UsageError, match=f"--modes {mode} needs labelled defects.*--protocol supervised"):
        check_args("good-only", ["anomaly", mode])
    check_args("good-only", ["anomaly", "auto"])   # auto picks anomaly when the split has no defects
    check_args("supervised", ["anomaly", mode], defects_total=10)


def test_options_a_protocol_would_ignore_are_refused():
    with pytest.raises(click.UsageError, match="--protocol kfold they would be ignored"):
        check_args("kfold", ["anomaly"], defects_total=10)
    with pytest.raises(click.UsageError, match="not both"):
        check_args("supervised", ["classifier"], defects_total=10, defects_per_type=3)
    with pytest.raises(click.UsageError, match="--k is the number of folds"):
        check_args("supervised", ["classifier"], k=5)
    with pytest.raises(click.UsageError, match="--ablation varies the good-only evidence"):
        check_args("supervised", ["classifier"], ablation=True)
    with pytest.raises(click.UsageError, match="unknown 'patchcore'; choose from anomaly, combined"):
        parse_list("anomaly,patchcore", "--modes", ("anomaly", "combined", "classifier", "auto"))
    with pytest.raises(click.UsageError, match="'x' is not a whole number"):
        parse_list("0,x", "--seeds", cast=int)
    assert parse_list("2,0,2", "--seeds", cast=int) == [2, 0]


def _strs(args):
    return [str(a) for a in args]


def test_kfold_plan_splits_each_fold_once_and_trains_every_mode_on_it(tmp_path):
    steps = plan(Path("/d"), ["casting"], "kfold", ["anomaly", "combined", "classifier"], [0], tmp_path,
                 weights="none", k=3)
    assert [s["repeat"] for s in steps] == [Repeat(0, 0), Repeat(0, 1), Repeat(0, 2)]
    for i, s in enumerate(steps):
        assert _strs(s["split"]) == ["data", "split", "/d/casting", "--protocol", "kfold", "--seed", "0", "--k", "3",
                                     "--fold", str(i), "--out", str(s["manifest"])]
        assert [r["mode"] for r in s["runs"]] == ["anomaly", "combined", "classifier"]
        for r in s["runs"]:   # the same split for every mode: the table compares them row by row
            t = _strs(r["train"])
            assert t[t.index("--manifest") + 1] == str(s["manifest"]) and t[t.index("--mode") + 1] == r["mode"]
            assert t[t.index("--project") + 1] == str(r["run"].parent) and t[t.index("--name") + 1] == r["run"].name
    assert len({r["run"] for s in steps for r in s["runs"]}) == 9 and len({s["manifest"] for s in steps}) == 3
    trains = {r["mode"]: _strs(r["train"]) for r in steps[0]["runs"]}
    assert all("anomaly.evidence=patch+global" in trains[m] for m in ("anomaly", "combined"))
    assert "--set" not in trains["classifier"]   # a classifier has no good-only evidence to set


def test_supervised_plan_repeats_the_split_per_seed_with_the_defects_asked(tmp_path):
    steps = plan(Path("/d"), ["casting", "screw"], "supervised", ["classifier"], [0, 1, 2], tmp_path,
                 weights="w.h5", defects_total=10, train_options=[("--input-size", 32), ("--epochs", 1)])
    assert [(s["set"], s["repeat"].seed) for s in steps] == [(n, i) for n in ("casting", "screw") for i in range(3)]
    split = _strs(steps[1]["split"])
    assert split[:8] == ["data", "split", "/d/casting", "--protocol", "supervised", "--seed", "1", "--defects-total"]
    assert split[8] == "10" and "--fold" not in split and "--k" not in split
    train = _strs(steps[1]["runs"][0]["train"])
    assert train[-4:] == ["--input-size", "32", "--epochs", "1"] and train[train.index("--weights") + 1] == "w.h5"
    per_type = plan(Path("/d"), ["screw"], "supervised", ["combined"], [0], tmp_path, weights="w",
                    defects_per_type=3)[0]["split"]
    assert _strs(per_type)[-4:-2] == ["--defects-per-type", "3"] and "--defects-total" not in _strs(per_type)


def test_good_only_plan_and_its_ablation_keep_the_result_names_the_readme_quotes(tmp_path):
    from benchmarks.realdata import RESULTS, default_out

    steps = plan(Path("/d"), ["casting"], "good-only", ["anomaly"], [0], tmp_path, weights="w", ablation=True)
    assert _strs(steps[0]["split"])[3:7] == ["--protocol", "good-only", "--seed", "0"]
    assert [r["evidence"] for r in steps[0]["runs"]] == ["patch+global", "patch", "global"]
    assert default_out("good-only", False) == RESULTS / "realdata_anomaly.json"
    assert default_out("good-only", True) == RESULTS / "realdata_anomaly_ablation.json"
    assert default_out("kfold", False) == RESULTS / "realdata_kfold.json"
    readme = (RESULTS.parents[1] / "README.md").read_text()
    assert "benchmarks/results/realdata_anomaly.json" in readme and "realdata_anomaly_ablation.json" in readme


@pytest.mark.slow
def test_classifier_on_a_supervised_split_runs_the_whole_cli_path(tmp_path):
    """split -> train --mode classifier -> export --int8 -> predict, as a user runs it (tiny, random weights)."""
    import os
    import subprocess
    import sys

    from tests.fixtures.common import ROOT
    from trainer.data.synth import generate

    generate(tmp_path / "data" / "tiny", size=48, n_train=12, n_test_good=6, n_per_defect=3, seed=0, progress=False)
    out = tmp_path / "realdata_supervised.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "realdata.py"), "--data", tmp_path / "data",
                           "--protocol", "supervised", "--defects-per-type", "1", "--modes", "classifier",
                           "--weights", "none", "--input-size", "32", "--epochs", "1", "--fine-tune-epochs", "0",
                           "--work", tmp_path / "work", "--out", out], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads(out.read_text())
    (row,) = res["rows"]
    assert res["protocol"] == "supervised" and row["mode"] == "classifier" and row["task"] == "classifier"
    assert row["n_train_defective"] == 4 and row["n_test"] == 14 and row["n_defective"] == 8  # 1 of 4 types moved
    # the row's int8 numbers are the predict JSON's, at the threshold the int8 file carries
    run = tmp_path / "work" / "runs" / "tiny_supervised_seed0_classifier"
    pred = json.loads((run / "predict_int8.json").read_text())
    assert row["int8_threshold"] == pred["model"]["threshold"] and pred["model"]["task"] == "classifier"
    manifest = json.loads((tmp_path / "work" / "tiny_supervised_seed0.json").read_text())
    by = {Path(r["path"]).resolve(): r for r in pred["results"]}
    test = [f for f in manifest["files"] if f["split"] == "test"]
    s8 = [by[(tmp_path / "data" / "tiny" / f["path"]).resolve()]["score"] for f in test]
    assert row["int8"] == summary([f["label"] for f in test], s8, row["int8_threshold"])
    assert all(r["defect_type"] is not None for r in pred["results"])   # a classifier names a type
    assert row["type_accuracy_note"] != "the model names no types"
    assert res["aggregates"][0]["repeats"] == 1 and "tiny" in done.stdout and "classifier" in done.stdout


def test_a_failing_step_repeats_the_commands_own_error_on_one_line(tmp_path, monkeypatch):
    import os
    import sys

    from benchmarks.realdata import _run
    from tests.fixtures.common import ROOT

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    log = tmp_path / "realdata.log"
    log.write_text("Error: an earlier command's error, not this one's\n")
    with pytest.raises(click.ClickException) as err:
        _run(["data", "split", tmp_path / "nope", "--protocol", "kfold", "--out", tmp_path / "m.json"], log)
    msg = err.value.message
    assert msg.startswith("edgeinspect data split exited 2: ") and str(tmp_path / "nope") in msg
    assert "earlier" not in msg and "Error:" not in msg and "\n" not in msg and str(log) in msg
