"""Export of an anomaly run whose model.keras has a defect-type head (issue 13): float32 and int8 files
carry "types" in their metadata, the device runtime names the type, parity measures type agreement."""
import json
import shutil

import numpy as np
import pytest

from edge.errors import ModelError
from edge.metadata import read_metadata, with_metadata
from edge.runtime import EdgeModel
from export.errors import ExportError

pytestmark = pytest.mark.slow

LABELS = ["good", "scratch", "spot", "unknown"]


@pytest.fixture(scope="module")
def typed_exports(export_anomaly_types_run):
    from export.convert import export_run

    rep = export_run(export_anomaly_types_run, variants=("fp32", "int8"), calib_size=40, progress=False, no_fail=True)
    return export_anomaly_types_run, rep


def _test_files(run):
    m = json.loads((run / "manifest.json").read_text())
    return [(f"{m['root']}/{f['path']}", f["type"]) for f in m["files"] if f["split"] == "test"]


def test_float32_and_int8_metadata_name_the_type_output(typed_exports):
    from export.parity import open_interpreter

    run, rep = typed_exports
    assert json.loads((run / "run.json").read_text())["labels"] == LABELS
    for v in ("fp32", "int8"):
        path = run / "export" / rep["variants"][v]["file"]
        meta = read_metadata(path)
        assert (meta["task"], meta["labels"]) == ("anomaly", LABELS)
        assert set(meta["outputs"]) == {"score", "map", "types"} == set(meta["output_quantization"])
        assert rep["variants"][v]["outputs"] == meta["outputs"]
        it = open_interpreter(path)
        outs = it.get_output_details()
        assert tuple(outs[meta["outputs"]["types"]]["shape"]) == (1, len(LABELS))
        assert tuple(outs[meta["outputs"]["score"]]["shape"]) == (1, 1)
        assert len(outs[meta["outputs"]["map"]]["shape"]) == 3
        assert outs[meta["outputs"]["types"]]["dtype"] == (np.uint8 if v == "int8" else np.float32)


def test_parity_reports_type_agreement(typed_exports):
    from export.parity import format_table

    _, rep = typed_exports
    fp32, int8 = rep["variants"]["fp32"]["parity"], rep["variants"]["int8"]["parity"]
    assert fp32["type_agreement"] == 1.0 and fp32["type_agreement_all"] == 1.0 and fp32["agreement"] == 1.0
    assert 0.9 <= int8["type_agreement"] <= 1.0 and "map_max_abs_diff" in int8
    assert "Type agree" in format_table(rep) and f"{fp32['type_agreement']:.4f}" in format_table(rep)


def test_edge_runtime_names_the_type_on_both_files(typed_exports):
    run, rep = typed_exports
    files = _test_files(run)
    for v in ("fp32", "int8"):
        m = EdgeModel(run / "export" / rep["variants"][v]["file"], threads=1)
        assert m.has_types and m.labels == LABELS
        preds = [(m.predict(path), typ) for path, typ in files]
        for p, _ in preds:
            assert p.anomaly_map is not None
            if p.verdict == "good":
                assert (p.defect_type, p.type_prob) == ("good", None)
            else:
                assert p.defect_type in LABELS[1:] and 0 < p.type_prob <= 1
        caught = [(p.defect_type, typ) for p, typ in preds if p.verdict == "defective" and typ != "good"]
        # the good-only evidence catches the scratches (the tiny trunk hardly sees the spots), and the
        # head fitted on three labelled examples per type names them
        assert len(caught) >= 5, v
        assert np.mean([a == b for a, b in caught]) >= 0.8, (v, caught)


def test_wrong_label_count_is_one_line(typed_exports, tmp_path):
    run, rep = typed_exports
    src = run / "export" / rep["variants"]["int8"]["file"]
    meta = dict(read_metadata(src), labels=["good", "defective"])
    bad = tmp_path / "model_int8.tflite"
    bad.write_bytes(with_metadata(src.read_bytes(), meta))
    with pytest.raises(ModelError, match=r"2 labels for a type head of 4 classes; re-export the model") as e:
        EdgeModel(bad)
    assert "\n" not in str(e.value)


def test_export_refuses_run_labels_that_do_not_fit_the_type_head(export_anomaly_types_run, tmp_path):
    from export.convert import export_run

    run = tmp_path / "run"
    shutil.copytree(export_anomaly_types_run, run, ignore=shutil.ignore_patterns("export"))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "labels": ["good", "scratch", "spot"]}))
    with pytest.raises(ExportError, match="type output has 4 classes but run.json lists 3 labels"):
        export_run(run, variants=("fp32",), progress=False)


def test_batch1_rebuild_accepts_the_type_head_and_names_what_it_expects():
    from export.convert import batch1_model
    from trainer.tfutil import import_keras

    keras = import_keras()
    inp = keras.Input((16, 16, 3), name="image")
    prob = keras.layers.Conv2D(1, 1, activation="sigmoid")(inp)
    outs = {"score": keras.layers.GlobalMaxPooling2D()(prob), "map": keras.layers.Reshape((16, 16))(prob),
            "type": keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inp))}
    info = {"task": "anomaly", "input_size": [16, 16]}
    m1 = batch1_model(keras.Model(inp, outs), info)
    assert tuple(m1.inputs[0].shape) == (1, 16, 16, 3) and set(m1.output) == {"score", "map", "type"}
    odd = keras.Model(inp, {"score": outs["score"], "map": outs["map"], "kind": outs["type"]})
    with pytest.raises(ExportError, match=r"model outputs \['kind', 'map', 'score'\] do not match task 'anomaly': "
                                          r"expected \['map', 'score'\] or \['map', 'score', 'type'\]"):
        batch1_model(odd, info)
    with pytest.raises(ExportError, match="do not match task 'classifier'"):
        batch1_model(keras.Model(inp, outs), {"task": "classifier", "input_size": [16, 16]})
