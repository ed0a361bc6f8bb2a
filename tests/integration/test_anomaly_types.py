"""Anomaly models with a defect-type head (issue 13): the runtime, predict, watch and OpenVINO on tiny
files built by the exporter's own metadata builder (``tests.fixtures.edge``, task ``anomaly_types``).

The tiny model is defective where a bright patch is; its type head reads the mean colour: red
"crack", green "hole", grey "unknown", blue prefers "good" (the case a defective verdict must not show).
"""
import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge.cli import EXIT_DEFECTIVE, EXIT_ERROR, main
from edge.errors import ModelError
from edge.metadata import read_metadata, with_metadata
from edge.runtime import EdgeModel
from tests.fixtures.edge import ANOMALY_TYPE_LABELS

# (name, background RGB, bright patch?, expected verdict, expected type)
CASES = [("red", (200, 40, 40), True, "defective", "crack"),
         ("green", (40, 200, 40), True, "defective", "hole"),
         ("grey", (100, 100, 100), True, "defective", "unknown"),
         ("blue", (40, 40, 220), True, "defective", "unknown"),   # head's argmax is "good": next best
         ("plain_red", (200, 40, 40), False, "good", "good")]


def _part(rgb, patch, size=(80, 64)):
    a = np.zeros((size[1], size[0], 3), np.uint8) + np.array(rgb, np.uint8)
    if patch:
        a[10:30, 10:30] = 255
    return a


@pytest.fixture(scope="module")
def typed_parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("typed_parts")
    out = {}
    for name, rgb, patch, _, _ in CASES:
        out[name] = d / f"{name}.png"
        Image.fromarray(_part(rgb, patch)).save(out[name])
    return out


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_defective_names_its_type_good_is_good_and_the_map_stays(tiny_models_dir, typed_parts, variant):
    m = EdgeModel(tiny_models_dir / f"tiny_anomaly_types_{variant}.tflite", threads=1)
    assert m.task == "anomaly" and m.has_types and m.labels == ANOMALY_TYPE_LABELS
    assert set(m.meta["outputs"]) == {"score", "map", "types"}
    for name, _, _, verdict, typ in CASES:
        p = m.predict(typed_parts[name])
        assert (p.verdict, p.defect_type) == (verdict, typ), (variant, name)
        assert p.anomaly_map is not None and p.anomaly_map.shape == (8, 8)
        if verdict == "good":
            assert p.type_prob is None and p.score < 0.5
        else:
            assert 0 < p.type_prob <= 1 and p.score >= 0.5
    # the blue part's head prefers "good": the type shown is the best *defect* label, with its own probability
    blue = m.predict(typed_parts["blue"])
    probs = m._output(m._types_i).reshape(-1)  # outputs of that last invoke
    assert int(np.argmax(probs)) == ANOMALY_TYPE_LABELS.index("good")
    assert blue.type_prob == pytest.approx(float(probs[ANOMALY_TYPE_LABELS.index("unknown")]))
    assert blue.to_dict()["defect_type"] == "unknown"


def test_models_without_a_type_head_are_unchanged(tiny_anomaly_tflite, typed_parts):
    m = EdgeModel(tiny_anomaly_tflite, threads=1)
    assert not m.has_types and set(m.meta["outputs"]) == {"score", "map"}
    p = m.predict(typed_parts["red"])
    assert p.verdict == "defective" and p.defect_type is None and p.type_prob is None and p.anomaly_map is not None


def _retag(src, dest, **changes):
    meta = dict(read_metadata(src))
    meta.update(changes)
    dest.write_bytes(with_metadata(src.read_bytes(), meta))
    return dest


def test_label_count_must_match_the_type_head(tiny_anomaly_types_tflite, tmp_path, typed_parts):
    bad = _retag(tiny_anomaly_types_tflite, tmp_path / "three_labels.tflite", labels=["good", "crack", "unknown"])
    with pytest.raises(ModelError, match=r"three_labels\.tflite: 3 labels for a type head of 4 classes") as e:
        EdgeModel(bad)
    assert "\n" not in str(e.value)
    r = CliRunner().invoke(main, ["predict", str(bad), str(typed_parts["red"])])
    assert r.exit_code == EXIT_ERROR and "3 labels for a type head of 4 classes" in r.output
    assert "Traceback" not in r.output


def test_types_index_that_is_not_a_separate_output_is_refused(tiny_anomaly_types_tflite, tmp_path):
    meta = read_metadata(tiny_anomaly_types_tflite)
    for i in (meta["outputs"]["score"], 7):
        bad = _retag(tiny_anomaly_types_tflite, tmp_path / f"types_{i}.tflite",
                     outputs={**meta["outputs"], "types": i})
        with pytest.raises(ModelError, match=r"metadata output 'types' -> \d+ does not name a separate one of the "
                                             r"model's 3 outputs; re-export the model"):
            EdgeModel(bad)


def test_predict_table_json_and_csv_show_the_type(tiny_anomaly_types_tflite, typed_parts, tmp_path):
    js, cs = tmp_path / "r.json", tmp_path / "r.csv"
    r = CliRunner().invoke(main, ["predict", str(tiny_anomaly_types_tflite), str(typed_parts["red"]),
                                  str(typed_parts["plain_red"]), "--json", str(js), "--csv", str(cs)])
    assert r.exit_code == EXIT_DEFECTIVE, r.output
    rows = {line.split()[0].rsplit("/", 1)[-1]: line for line in r.output.splitlines() if ".png" in line}
    assert "defective" in rows["red.png"] and "crack (" in rows["red.png"]
    assert rows["plain_red.png"].split()[1:4:2] == ["good", "good"]  # verdict good, type good (no probability)
    res = {p.rsplit("/", 1)[-1]: x for x in json.loads(js.read_text())["results"] for p in [x["path"]]}
    assert (res["red.png"]["defect_type"], res["plain_red.png"]["defect_type"]) == ("crack", "good")
    assert res["red.png"]["type_prob"] > 0.5 and res["plain_red.png"]["type_prob"] is None
    assert json.loads(js.read_text())["model"]["labels"] == ANOMALY_TYPE_LABELS
    with open(cs) as fh:
        got = {row["path"].rsplit("/", 1)[-1]: row for row in csv.DictReader(fh)}
    assert (got["red.png"]["defect_type"], got["plain_red.png"]["defect_type"]) == ("crack", "good")
    assert got["plain_red.png"]["type_prob"] == ""


def test_save_maps_still_works_with_a_type_head(tiny_anomaly_types_tflite, typed_parts, tmp_path):
    r = CliRunner().invoke(main, ["predict", str(tiny_anomaly_types_tflite), str(typed_parts["green"]),
                                  "--save-maps", str(tmp_path / "maps"), "--json", str(tmp_path / "r.json")])
    assert r.exit_code == EXIT_DEFECTIVE, r.output
    rec = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert rec["defect_type"] == "hole" and rec["map"] and (tmp_path / "maps" / "green_map.png").is_file()


def test_watch_log_carries_the_type(tiny_anomaly_types_tflite, tmp_path):
    from edge.watch.log import read_log
    from edge.watch.service import Service, WatchConfig

    cam, log = tmp_path / "cam", tmp_path / "r.jsonl"
    cam.mkdir()
    Image.fromarray(_part((40, 200, 40), True)).save(cam / "a_green.png")
    Image.fromarray(_part((40, 200, 40), False)).save(cam / "b_green.png")
    svc = Service(WatchConfig(model=str(tiny_anomaly_types_tflite), source=str(cam), log=str(log), poll=0.02,
                              quiet=True, max_items=2))
    svc.run(install_signals=False)
    recs = {r["source"].rsplit("/", 1)[-1]: r for r in read_log(log) if "status" in r}
    assert (recs["a_green.png"]["verdict"], recs["a_green.png"]["type"]) == ("defective", "hole")
    assert recs["a_green.png"]["type_prob"] > 0.5
    assert (recs["b_green.png"]["verdict"], recs["b_green.png"]["type"], recs["b_green.png"]["type_prob"]) == \
        ("good", "good", None)


def test_openvino_gives_the_same_types(tiny_models_dir, typed_parts):
    pytest.importorskip("openvino")
    for variant in ("fp32", "int8"):
        path = tiny_models_dir / f"tiny_anomaly_types_{variant}.tflite"
        lite, ov = EdgeModel(path, threads=1, backend="litert"), EdgeModel(path, threads=1, backend="openvino")
        assert ov.backend == "openvino" and ov.has_types
        for name, *_ in CASES:
            a, b = lite.predict(typed_parts[name]), ov.predict(typed_parts[name])
            assert (a.verdict, a.defect_type) == (b.verdict, b.defect_type), (variant, name)
            assert (a.type_prob is None) == (b.type_prob is None)
            if a.type_prob is not None:
                assert abs(a.type_prob - b.type_prob) < 0.05
            assert np.abs(a.anomaly_map - b.anomaly_map).max() < 0.05
