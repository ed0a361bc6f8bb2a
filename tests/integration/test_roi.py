"""--roi: a defect painted where the mask says "ignore" is not flagged, and the int8 file alone agrees."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge.cli import main


@pytest.fixture(scope="module")
def painted(tiny_manifest_good_only, tmp_path_factory):
    """(mask path, a good test part with a red blob in its top-left corner, the clean part, root, manifest)."""
    from trainer.data.run_contract import load_manifest

    root, manifest = tiny_manifest_good_only
    tmp = tmp_path_factory.mktemp("roi")
    mask = np.full((192, 192), 255, np.uint8)   # any size: resized to the model input like the images
    mask[:84, :84] = 0                           # ignore the top-left corner
    Image.fromarray(mask).save(tmp / "mask.png")
    good = next(f for f in load_manifest(manifest)["files"] if f["split"] == "test" and f["label"] == 0)
    img = np.asarray(Image.open(root / good["path"]).convert("RGB")).copy()
    s = img.shape[0] / 96
    img[int(6 * s):int(30 * s), int(6 * s):int(30 * s)] = (255, 0, 0)
    Image.fromarray(img).save(tmp / "painted.png")
    return tmp / "mask.png", tmp / "painted.png", root / good["path"], root, manifest


def _train_and_export(root, manifest, project, name, weights, roi=None):
    args = ["train", "--data", str(root), "--manifest", str(manifest), "--mode", "anomaly", "--input-size", "96",
            "--weights", str(weights), "--set", "anomaly.bank_size=512", "--project", str(project), "--name", name]
    res = CliRunner().invoke(main, args + (["--roi", str(roi)] if roi else []))
    assert res.exit_code == 0, res.output
    run = project / name
    res = CliRunner().invoke(main, ["export", str(run), "--int8", "--no-fail", "-q"])
    assert res.exit_code == 0, res.output
    return run


def _keras_scores(run, paths):
    from export.calibration import load_images
    from trainer.layers import load_model

    x = load_images([str(p) for p in paths], (96, 96))[0].astype(np.float32)
    return np.asarray(load_model(run / "model.keras")(x)["score"])[:, 0]


def _int8_verdicts(run, paths, out):
    res = CliRunner().invoke(main, ["predict", str(run / "export" / "model_int8.tflite"), *map(str, paths),
                                    "--json", str(out)])
    assert res.exit_code in (0, 1), res.output
    from pathlib import Path

    return {str(Path(r["path"]).resolve()): r["verdict"] for r in json.loads(out.read_text())["results"]}


def test_defect_in_the_ignored_region_is_flagged_only_without_roi(painted, tmp_path, weights_no_top):
    mask, bad, clean, root, manifest = painted
    plain = _train_and_export(root, manifest, tmp_path, "plain", weights_no_top)
    masked = _train_and_export(root, manifest, tmp_path, "masked", weights_no_top, roi=mask)
    s_plain, s_masked = _keras_scores(plain, [bad, clean]), _keras_scores(masked, [bad, clean])
    assert s_plain[0] >= 0.5 > s_plain[1]      # without --roi the painted corner is a defect
    assert s_masked[0] < 0.5 and s_masked[1] < 0.5
    v_plain = _int8_verdicts(plain, [bad], tmp_path / "p.json")
    v_masked = _int8_verdicts(masked, [bad, clean], tmp_path / "m.json")
    assert v_plain[str(bad.resolve())] == "defective"     # the .tflite alone decides like its Keras model
    assert v_masked[str(bad.resolve())] == "good" and v_masked[str(clean.resolve())] == "good"
    info = json.loads((masked / "run.json").read_text())["roi"]
    assert info["coverage"] == pytest.approx(1 - (84 / 192) ** 2, abs=0.03) and len(info["sha256"]) == 64
    from edge.metadata import read_metadata

    # the int8 file (full-integer: the converter allows only int8 builtins) carries the mask's record
    meta = read_metadata(masked / "export" / "model_int8.tflite")
    assert meta["roi"]["sha256"] == info["sha256"] and meta["roi"]["grid"][0].startswith("0" * 12)
    assert meta["input"]["dtype"] == "uint8"


def test_overlay_dims_the_ignored_area():
    from edge.overlay import overlay_image

    img = np.full((64, 64, 3), 200, np.uint8)
    grid = ["0" * 4 + "1" * 4] * 8                # left half ignored
    out = np.asarray(overlay_image(img, np.zeros((8, 8), np.float32), roi=grid))
    plain = np.asarray(overlay_image(img, np.zeros((8, 8), np.float32)))
    assert (out[:, :28] < plain[:, :28]).all() and np.array_equal(out[:, 36:], plain[:, 36:])


def test_classifier_graph_ignores_masked_pixels_and_keeps_the_mask_through_save_and_split(tmp_path):
    from trainer.layers import load_model, save_model
    from trainer.model import build_classifier, split_at_block

    mask = np.ones((32, 32), np.float32)
    mask[:, :12] = 0
    model = build_classifier(3, input_size=32, weights=None, roi=mask)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 32, 32, 3)).astype(np.float32)
    y = x.copy()
    y[:, :, :12] = rng.integers(0, 256, (2, 32, 12, 3))    # only ignored pixels change
    z = x.copy()
    z[:, :, 20:] = 255 - z[:, :, 20:]                       # inspected pixels change
    from trainer.classifier_update import feature_model

    out = lambda m, a: np.asarray(feature_model(m)(a))   # the pooled features the heads read
    ref = out(model, x)
    np.testing.assert_array_equal(ref, out(model, y))      # the backbone sees the very same pixels
    assert np.abs(ref - out(model, z)).max() > 1e-2 * np.abs(ref).max()
    save_model(model, tmp_path / "model.keras")
    again = load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(out(again, y), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    bottom, _ = split_at_block(again, 0)   # the CPU training cache sees the masked pixels too
    np.testing.assert_allclose(np.asarray(bottom(y)), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
