"""`edgeinspect predict` end to end on tiny edgeinspect-format models (classifier + anomaly)."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge.cli import EXIT_DEFECTIVE, EXIT_ERROR, EXIT_OK, main
from edge.runtime import EdgeModel
from tests.fixtures.common import CORAL_DIR, ROOT


def _img(path, rgb=(120, 120, 120), patch=None, size=(80, 64), mode=None):
    a = np.zeros((size[1], size[0], 3), np.uint8) + np.array(rgb, np.uint8)
    if patch is not None:
        a[10:30, 10:30] = patch
    im = Image.fromarray(a)
    if mode:
        im = im.convert(mode)
    im.save(path)
    return path


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("parts")
    (d / "sub").mkdir()
    return {
        "grey": _img(d / "grey.png"),
        "red": _img(d / "sub" / "red.png", rgb=(210, 40, 40)),
        "bright": _img(d / "bright.jpg", patch=(255, 255, 255)),
        "gray_l": _img(d / "gray_l.png", mode="L"),
        "rgba": _img(d / "rgba.png", mode="RGBA"),
        "dir": d,
    }


def run(*args, input=None):
    r = CliRunner().invoke(main, ["predict", *map(str, args)], input=input)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r


def test_classifier_verdicts_on_crafted_images(tiny_models_dir, parts):
    for variant in ("int8", "fp32"):
        m = EdgeModel(tiny_models_dir / f"tiny_classifier_{variant}.tflite", threads=1)
        g, r = m.predict(parts["grey"]), m.predict(parts["red"])
        assert (g.verdict, r.verdict) == ("good", "defective"), variant
        assert g.score < 0.5 <= r.score and r.defect_type == "crack" and r.type_prob > 0.5
        assert m.labels == ["good", "crack", "hole"] and m.task == "classifier"


def test_anomaly_verdicts_and_map(tiny_models_dir, parts):
    for variant in ("int8", "fp32"):
        m = EdgeModel(tiny_models_dir / f"tiny_anomaly_{variant}.tflite", threads=1)
        g, b = m.predict(parts["grey"]), m.predict(parts["bright"])
        assert (g.verdict, b.verdict) == ("good", "defective"), variant
        assert b.anomaly_map.shape == (8, 8) and b.defect_type is None
        # the map is high where the bright patch is (top-left), low elsewhere
        assert b.anomaly_map[1:3, 1:3].min() > 0.5 > b.anomaly_map[5:, 5:].max()


def test_threshold_override_flips_the_verdict(tiny_classifier_tflite, parts):
    m = EdgeModel(tiny_classifier_tflite, threshold=0.1)
    assert m.predict(parts["grey"]).verdict == "defective"


def test_iter_predict_with_decode_workers_matches_sequential(tiny_classifier_tflite, parts, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"junk")
    paths = [parts["grey"], bad, parts["red"], parts["rgba"]]
    m = EdgeModel(tiny_classifier_tflite)
    seq = [r.verdict if hasattr(r, "verdict") else "err" for _, r in m.iter_predict(paths, workers=0)]
    par = [r.verdict if hasattr(r, "verdict") else "err" for _, r in m.iter_predict(paths, workers=2)]
    assert seq == par == ["good", "err", "defective", "good"]


def test_exit_codes(tiny_classifier_tflite, parts):
    assert run(tiny_classifier_tflite, parts["grey"]).exit_code == EXIT_OK
    assert run(tiny_classifier_tflite, parts["grey"], parts["red"]).exit_code == EXIT_DEFECTIVE
    r = run(tiny_classifier_tflite, parts["red"], parts["dir"] / "missing.png")
    assert r.exit_code == EXIT_ERROR and "missing.png: no such file or folder" in r.output


def test_folder_glob_and_stdin_inputs_with_json_and_csv(tiny_classifier_tflite, parts, tmp_path):
    d = parts["dir"]
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    r = run(tiny_classifier_tflite, d, "--json", out_json, "--csv", out_csv)
    assert r.exit_code == EXIT_DEFECTIVE, r.output
    doc = json.loads(out_json.read_text())
    res = {p.split("/")[-1]: rec for rec in doc["results"] for p in [rec["path"]]}
    assert set(res) == {"grey.png", "red.png", "bright.jpg", "gray_l.png", "rgba.png"}  # recursive
    assert res["red.png"]["verdict"] == "defective" and res["red.png"]["defect_type"] == "crack"
    assert doc["summary"]["defective"] == 1 and doc["model"]["task"] == "classifier"
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ["path", "verdict", "score", "defect_type", "type_prob", "latency_ms", "error"]
    assert {row["path"].split("/")[-1]: row["verdict"] for row in rows}["red.png"] == "defective"
    assert float(rows[0]["latency_ms"]) > 0
    r = run(tiny_classifier_tflite, str(d / "**" / "*.png"), "--quiet")
    assert r.exit_code == EXIT_DEFECTIVE and r.output.strip() == ""
    r = run(tiny_classifier_tflite, "-", input=f"{parts['grey']}\n{parts['rgba']}\n")
    assert r.exit_code == EXIT_OK and "2 images: 2 good, 0 defective, 0 errors" in r.output


def test_bad_files_are_reported_and_the_run_continues(tiny_classifier_tflite, parts, tmp_path):
    (tmp_path / "corrupt.png").write_bytes(open(parts["grey"], "rb").read()[:60])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("hello")
    out = tmp_path / "r.csv"
    r = run(tiny_classifier_tflite, tmp_path / "corrupt.png", tmp_path / "empty.jpg", tmp_path / "notes.png",
            parts["red"], "--csv", out)
    assert r.exit_code == EXIT_ERROR  # errors win over defective
    for name, why in (("corrupt.png", "corrupt or truncated"), ("empty.jpg", "empty file"),
                      ("notes.png", "not an image")):
        lines = [ln for ln in r.output.splitlines() if ln.startswith("error:") and name in ln]
        assert len(lines) == 1 and why in lines[0], r.output
    assert "Traceback" not in r.output
    rows = {row["path"].split("/")[-1]: row for row in csv.DictReader(out.open())}
    assert rows["red.png"]["verdict"] == "defective" and rows["empty.jpg"]["error"].startswith("empty file")


def test_model_errors_are_one_line_exit_2(tiny_classifier_tflite, parts, tmp_path):
    (tmp_path / "x.tflite").write_text("not a model")
    for args, why in (([tmp_path / "x.tflite", parts["grey"]], "not a TFLite model"),
                      ([CORAL_DIR / "mobilenet_v2_1.0_224_quant.tflite", parts["grey"]], "--labels FILE")):
        r = run(*args)
        assert r.exit_code == EXIT_ERROR and why in r.output and "Traceback" not in r.output
        assert len([ln for ln in r.output.splitlines() if ln.startswith("Error:")]) == 1


def test_plain_classifier_with_labels_via_cli(tmp_path):
    r = run(CORAL_DIR / "mobilenet_v2_1.0_224_quant.tflite", CORAL_DIR / "cat.bmp", "--labels",
            CORAL_DIR / "imagenet_labels.txt", "--json", tmp_path / "o.json", "--top-k", "2")
    assert r.exit_code == EXIT_OK and "Egyptian cat" in r.output
    rec = json.loads((tmp_path / "o.json").read_text())["results"][0]
    assert rec["verdict"] == "-" and [t[0] for t in rec["top"]] == ["Egyptian cat", "tabby, tabby cat"]


def test_save_maps_writes_overlays_for_anomaly_models(tiny_anomaly_tflite, parts, tmp_path):
    out = tmp_path / "maps"
    r = run(tiny_anomaly_tflite, parts["grey"], parts["bright"], "--save-maps", out)
    assert r.exit_code == EXIT_DEFECTIVE, r.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bright_map.png", "grey_map.png"]
    with Image.open(out / "bright_map.png") as im:
        assert im.size[0] > 0


def test_predict_subprocess_never_imports_tensorflow(tiny_classifier_tflite, parts):
    probe = ("import sys\nfrom edge.cli import main\n"
             "try:\n    main(['predict', sys.argv[1], sys.argv[2], '-q'])\nexcept SystemExit as e:\n    code = e.code\n"
             "print('TF' if any(k.split('.')[0] in ('tensorflow', 'keras') for k in sys.modules) else 'NOTF', code)")
    out = subprocess.run([sys.executable, "-c", probe, str(tiny_classifier_tflite), str(parts["red"])],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["NOTF", "1"], out.stdout + out.stderr


def test_tensorflow_backend_fallback_runs_the_same_model(tiny_classifier_tflite, parts):
    import tensorflow  # noqa: F401  (the dev install has it; this test is about the fallback backend)
    m = EdgeModel(tiny_classifier_tflite, backend="tensorflow", threads=1)
    ref = EdgeModel(tiny_classifier_tflite, threads=1)
    assert m.backend == "tensorflow"
    assert m.predict(parts["red"]).score == ref.predict(parts["red"]).score


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "2", "-1", "1.5"])
def test_threshold_outside_0_1_is_refused_not_applied(tiny_classifier_tflite, parts, value):
    # issue 19.9: nan/inf/2 passed every defect with exit 0; -1 rejected everything.
    r = run(tiny_classifier_tflite, parts["red"], f"--threshold={value}")
    assert r.exit_code == EXIT_ERROR, r.output
    assert "--threshold" in r.output and "between 0 and 1" in r.output and "Traceback" not in r.output
    assert "defective" not in r.output and "good" not in r.output  # nothing was judged


def test_threshold_in_metadata_is_range_checked_too(tmp_path):
    from tests.fixtures.edge import make_tiny_tflite

    bad = make_tiny_tflite("classifier", tmp_path, "fp32", threshold=float("nan"), name="nan.tflite")
    with pytest.raises(Exception, match="nan.tflite metadata: threshold nan is outside 0..1") as e:
        EdgeModel(bad)
    assert type(e.value).__name__ == "ModelError"
    assert EdgeModel(bad, threshold=0.5).threshold == 0.5  # an explicit, valid override still works


def test_defective_verdict_never_has_type_good(tiny_classifier_tflite, tmp_path):
    # issue 19.10: a greenish part has the "good" type head winning; forced defective by a low threshold,
    # the old runtime reported "defective, type good".
    green = _img(tmp_path / "green.png", rgb=(100, 140, 100))
    out = tmp_path / "r.json"
    r = run(tiny_classifier_tflite, green, "--threshold", "0.01", "--json", out)
    assert r.exit_code == EXIT_DEFECTIVE, r.output
    rec = json.loads(out.read_text())["results"][0]
    assert rec["verdict"] == "defective" and rec["defect_type"] == "hole" and 0 < rec["type_prob"] < 0.5
    good = EdgeModel(tiny_classifier_tflite).predict(green)
    assert (good.verdict, good.defect_type) == ("good", "good")  # a good verdict keeps the head's argmax


def test_defect_type_is_unknown_when_the_head_has_only_good():
    from edge.prediction import defect_type

    assert defect_type(["good"], np.array([1.0]), True) == ("unknown", None)
    assert defect_type(["good", "crack"], np.array([0.9, 0.1]), True) == ("crack", pytest.approx(0.1))
    assert defect_type(["good", "crack"], np.array([0.9, 0.1]), False) == ("good", pytest.approx(0.9))


def test_images_far_smaller_than_the_model_input_are_refused(tiny_classifier_tflite, parts, tmp_path):
    # issue 19.13: a 1x1 image was upscaled to the input size and judged.
    tiny = _img(tmp_path / "dot.png", rgb=(210, 40, 40), size=(1, 1))
    r = run(tiny_classifier_tflite, tiny, parts["grey"])
    assert r.exit_code == EXIT_ERROR
    line = next(ln for ln in r.output.splitlines() if "dot.png" in ln)
    assert "1x1 px, far smaller than the model input 32x32" in line and "defective" not in line
    assert "2 images: 1 good, 0 defective, 1 errors" in r.output
    m = EdgeModel(tiny_classifier_tflite)
    with pytest.raises(Exception, match="far smaller"):
        m.predict_array(np.zeros((2, 2, 3), np.uint8))
    assert m.predict(_img(tmp_path / "small_ok.png", size=(8, 8))).verdict == "good"  # 1/4 of the input: fine


def test_unwritable_json_or_csv_fails_first_in_one_line(tiny_classifier_tflite, parts, tmp_path):
    # issue 19.16: the traceback came after all the work.
    (tmp_path / "file.txt").write_text("x")
    for opt, target in (("--json", tmp_path / "file.txt" / "r.json"), ("--csv", "/proc/edgeinspect-r.csv")):
        r = run(tiny_classifier_tflite, parts["red"], opt, target)
        assert r.exit_code == EXIT_ERROR and "Traceback" not in r.output
        assert f"{opt} {target}: cannot write there" in r.output
        assert "red.png" not in r.output  # refused before any image was inspected


def test_json_to_stdout_and_csv_through_a_symlink(tiny_classifier_tflite, parts, tmp_path):
    # issue 19.18: /dev/stdout, FIFOs and symlinks were replaced by a regular file.
    r = run(tiny_classifier_tflite, parts["red"], "--json", "-")
    assert r.exit_code == EXIT_DEFECTIVE
    assert json.loads(r.output)["results"][0]["verdict"] == "defective"  # stdout is the JSON only
    real = tmp_path / "real.csv"
    real.write_text("")
    (tmp_path / "link.csv").symlink_to(real)
    assert run(tiny_classifier_tflite, parts["red"], "--csv", tmp_path / "link.csv").exit_code == EXIT_DEFECTIVE
    assert (tmp_path / "link.csv").is_symlink() and "defective" in real.read_text()


def test_predict_into_a_closed_pipe_still_writes_json_and_keeps_the_exit_code(tiny_classifier_tflite, parts, tmp_path):
    # issue 19.20: 'predict ... | head' stopped with exit 1 ("defective") and no --json.
    import os

    out = tmp_path / "r.json"
    rfd, wfd = os.pipe()
    os.close(rfd)  # the reader is gone before the first line, like 'head -0'
    proc = subprocess.run([sys.executable, "-m", "edge.cli", "predict", str(tiny_classifier_tflite),
                           str(parts["grey"]), str(parts["red"]), "--json", str(out)],
                          stdout=wfd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=120)
    os.close(wfd)
    assert proc.returncode == EXIT_DEFECTIVE, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert json.loads(out.read_text())["summary"]["images"] == 2


def test_csv_with_a_non_utf8_file_name(tiny_classifier_tflite, tmp_path):
    # issue 19.17: a non-UTF-8 byte in a file name gave a traceback and no CSV.
    import os

    name = os.fsdecode(b"part\xff.png")
    _img(tmp_path / name, rgb=(210, 40, 40))
    out = tmp_path / "r.csv"
    r = run(tiny_classifier_tflite, tmp_path, "--csv", out)
    assert r.exit_code == EXIT_DEFECTIVE, r.output
    assert b"part\xff.png,defective" in out.read_bytes()  # the real bytes: the path still opens


def test_unreadable_subfolder_and_file_are_named_as_permission_errors(tiny_classifier_tflite, parts, tmp_path,
                                                                       monkeypatch):
    # issues 19.12 and 19.15: os.walk skipped an unreadable subfolder silently (exit 0), an unreadable
    # folder was "contains no images" and an unreadable file "corrupt or truncated". Tests run as root,
    # where chmod does not deny, so the OS's answer is simulated at the call that gets it.
    import os
    import shutil

    import PIL.Image

    d = tmp_path / "parts"
    (d / "locked").mkdir(parents=True)
    shutil.copy(parts["grey"], d / "ok.png")
    shutil.copy(parts["grey"], d / "locked" / "hidden.png")
    shutil.copy(parts["grey"], d / "secret.png")
    real_scandir, real_open = os.scandir, PIL.Image.open

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    def image_open(fp, *a, **k):
        if os.fspath(fp).endswith("secret.png"):
            raise PermissionError(13, "Permission denied", os.fspath(fp))
        return real_open(fp, *a, **k)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(PIL.Image, "open", image_open)
    r = run(tiny_classifier_tflite, d)
    assert r.exit_code == EXIT_ERROR, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert any("locked: cannot read folder: Permission denied; check its permissions" in ln for ln in lines)
    assert any("secret.png: cannot read: Permission denied" in ln for ln in lines)
    assert not any("corrupt" in ln for ln in lines)
    r = run(tiny_classifier_tflite, d / "locked")
    assert r.exit_code == EXIT_ERROR and "Permission denied" in r.output and "contains no images" not in r.output


@pytest.mark.parametrize("threads", ["0", "-2", "1000"])
def test_predict_threads_out_of_range_is_refused(tiny_classifier_tflite, parts, threads):
    # issue 19.21: --threads 0/1000 were accepted silently.
    r = run(tiny_classifier_tflite, parts["grey"], "--threads", threads)
    assert r.exit_code == EXIT_ERROR and "--threads" in r.output and "grey.png" not in r.output


def test_pillow_warnings_are_one_line_each(tiny_classifier_tflite, parts, monkeypatch):
    # issue 19 (also worth fixing): Pillow's multi-line warnings between the one-line errors.
    import warnings

    import PIL.Image

    real_open = PIL.Image.open

    def image_open(fp, *a, **k):  # what Pillow does for, e.g., a TIFF with damaged EXIF
        warnings.warn("Possibly corrupt EXIF data.\n  Expecting to read 12 bytes but only got 6.", UserWarning)
        return real_open(fp, *a, **k)

    monkeypatch.setattr(PIL.Image, "open", image_open)
    r = run(tiny_classifier_tflite, parts["grey"])
    warn = [ln for ln in r.output.splitlines() if "EXIF" in ln]
    assert warn == ["warning: Possibly corrupt EXIF data. Expecting to read 12 bytes but only got 6."], r.output
    assert warnings.showwarning.__module__ == "warnings"  # restored after the command
