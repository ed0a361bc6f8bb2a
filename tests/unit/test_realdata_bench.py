"""benchmarks/realdata.py's arithmetic: the table a plant engineer reads must say what the model did."""
import pytest

from benchmarks.realdata import _summary, format_table


def test_summary_counts_false_rejects_and_misses_at_the_given_threshold():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.3, 0.9, 0.4, 0.8, 0.7]
    at_half = _summary(y, s, 0.5)
    assert at_half["false_reject"] == pytest.approx(0.25) and at_half["specificity"] == pytest.approx(0.75)
    assert at_half["recall"] == pytest.approx(0.75)
    assert at_half["balanced_accuracy"] == pytest.approx(0.75) and at_half["majority_baseline"] == 0.5
    # the int8 file decides at its own threshold: a higher one rejects fewer good parts and misses more
    strict = _summary(y, s, 0.65)
    assert strict["false_reject"] == 0.0 and strict["recall"] == pytest.approx(0.75)
    assert _summary(y, s, 0.85)["recall"] == pytest.approx(0.25)


def test_table_shows_float_and_int8_beside_the_baseline_and_the_target():
    row = {"set": "casting", "evidence": "patch+global", "float": _summary([0, 1], [0.2, 0.9], 0.5),
           "int8": _summary([0, 1], [0.3, 0.8], 0.5), "target_false_reject": 0.01, "parity": "OK",
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
