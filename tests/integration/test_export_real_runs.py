"""Export the trainer's and the anomaly mode's own tiny runs (their session fixtures), not just ours."""
import json
import shutil

import numpy as np
import pytest

from edge.metadata import read_metadata

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fixture", ["tiny_classifier_run", "tiny_anomaly_run"])
def test_export_real_tiny_run(fixture, request, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from export.convert import export_run

    src = request.getfixturevalue(fixture)
    run = shutil.copytree(src, tmp_path / "run", ignore=shutil.ignore_patterns("export"))  # theirs is read-only
    info = json.loads((run / "run.json").read_text())
    report = export_run(run, variants=("int8",), calib_size=64, progress=False, no_fail=True)
    path = run / "export" / report["variants"]["int8"]["file"]
    meta = read_metadata(path)
    assert meta["task"] == info["task"] and meta["labels"] == info["labels"] and meta["variant"] == "int8"
    it = Interpreter(model_path=str(path))
    inp = it.get_input_details()[0]
    assert inp["dtype"] == np.uint8 and tuple(inp["shape"])[0] == 1
    assert (meta["input"]["scale"], meta["input"]["zero_point"]) == (1.0, 0)
    want = {"classifier": {"score", "types"}, "anomaly": {"score", "map"}}[info["task"]]
    assert set(meta["outputs"]) == want
    p = report["variants"]["int8"]["parity"]
    # Their tiny runs are trained for seconds: require parity that a working int8 export always reaches.
    assert p["agreement"] >= 0.9 and p["auroc_drop"] <= 0.05, p
    if info["task"] == "classifier":  # anomaly scores saturate beyond the anchored logit range by design
        assert p["spearman"] > 0.9, p
    assert report["variants"]["int8"]["size_bytes"] >= 0.5 * report["keras_params"]
