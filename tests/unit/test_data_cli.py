"""`edgeinspect data synth|split|info` through click's CliRunner (the real entry point)."""
import json

from click.testing import CliRunner

from edge.cli import main


def _run(*args):
    return CliRunner().invoke(main, ["data", *map(str, args)])


def test_help_documents_every_option():
    for cmd in ("synth", "split", "info"):
        r = _run(cmd, "--help")
        assert r.exit_code == 0, r.output
    text = _run("split", "--help").output
    for opt in ("--protocol", "--defects-per-type", "--defects-total", "--val-fraction", "--k", "--fold", "--seed",
                "--out", "--skip-bad"):
        assert opt in text


def test_synth_then_info_then_split(tmp_path):
    root = tmp_path / "cast"
    r = _run("synth", "--kind", "casting", "--out", root, "--size", 48, "--n-train", 6, "--n-test-good", 3,
             "--n-per-defect", 3, "--seed", 1, "--workers", 1)
    assert r.exit_code == 0, r.output
    assert "wrote 18 casting images" in r.output
    assert sorted(p.name for p in (root / "test").iterdir()) == ["blowhole", "burr", "good", "scratch"]

    r = _run("info", root)
    assert r.exit_code == 0, r.output
    assert "18 images, 4 classes" in r.output and "48x48 (18)" in r.output and "RGB (18)" in r.output
    r = _run("info", root, "--json")
    assert json.loads(r.output)["counts"]["test/burr"] == 3

    out = tmp_path / "m.json"
    r = _run("split", root, "--protocol", "supervised", "--defects-per-type", 1, "--out", out)
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["protocol"] == "supervised" and m["params"]["defects_per_type"] == 1
    header = next(line for line in r.output.splitlines() if line.startswith("split"))
    assert header.split() == ["split", "good", "blowhole", "burr", "scratch", "total"]
    train_row = next(line for line in r.output.splitlines() if line.startswith("train"))
    assert int(train_row.split()[-1]) == sum(1 for f in m["files"] if f["split"] == "train")


def test_split_bad_image_is_an_error_unless_skipped(tiny_data, tmp_path):
    import shutil

    root = tmp_path / "d"
    shutil.copytree(tiny_data, root)
    (root / "test" / "hole" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    r = _run("split", root, "--protocol", "good-only", "--out", tmp_path / "a.json")
    assert r.exit_code == 2
    assert "zz_broken.png" in r.output and "--skip-bad" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "a.json").exists()
    r = _run("split", root, "--protocol", "good-only", "--skip-bad", "--out", tmp_path / "b.json")
    assert r.exit_code == 0, r.output
    assert "zz_broken.png" in r.output and "left out 1 unreadable image" in r.output
    m = json.loads((tmp_path / "b.json").read_text())
    assert m["params"]["excluded"] == ["test/hole/zz_broken.png"]
    assert all("zz_broken" not in f["path"] for f in m["files"])


def test_split_unsatisfiable_is_one_line_exit_2(tiny_data, tmp_path):
    r = _run("split", tiny_data, "--protocol", "supervised", "--defects-per-type", 9, "--out", tmp_path / "m.json")
    assert r.exit_code == 2 and "--defects-per-type 9" in r.output and "Traceback" not in r.output
    r = _run("info", tmp_path / "missing")
    assert r.exit_code == 2 and "dataset folder not found" in r.output
