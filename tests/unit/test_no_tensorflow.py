"""The device install has no TensorFlow: the edge runtime and its commands must never import it.

The probe runs in a subprocess where importing tensorflow, keras or tf_keras *raises* (a meta-path
blocker), so the check holds on a workstation that has TensorFlow installed: an ``import tensorflow``
anywhere under ``edge/`` fails it. Only modules whose optional extra is genuinely not installed may
fail to import, and then only because of that extra.
"""
import json
import pkgutil
import subprocess
import sys

import edge
from tests.fixtures.common import ROOT

BLOCKED = ("tensorflow", "keras", "tf_keras")
# extra -> the import name whose absence may stop a module (and nothing else may)
OPTIONAL = ("cv2", "paho", "prometheus_client", "picamera2", "asyncua", "pymodbus")

PROBE = r"""
import importlib, importlib.abc, importlib.util, json, pkgutil, sys
BLOCKED = %(blocked)r
OPTIONAL = %(optional)r

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"BLOCKED-TF: the edge runtime imported {name}")
        return None

sys.meta_path.insert(0, Blocker())
import edge
mods = ["edge"] + [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.")]
failed = {}
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as e:
        failed[m] = f"{type(e).__name__}: {e}"
missing_optional = [o for o in OPTIONAL if importlib.util.find_spec(o) is None]
from click.testing import CliRunner
from edge.cli import main
outs = {}
for args in (["--help"], ["predict", "--help"], ["watch", "--help"], ["doctor", "--help"],
             ["predict", "--json", sys.argv[3], sys.argv[1], sys.argv[2]]):
    r = CliRunner().invoke(main, args)
    outs[args[0] if len(args) < 3 else "predict"] = {"code": r.exit_code, "out": r.output[-600:],
                                                   "exc": repr(r.exception) if r.exception else None}
print(json.dumps({"tf": sorted(k for k in sys.modules if k.split(".")[0] in BLOCKED),
                  "mods": mods, "failed": failed, "missing_optional": missing_optional, "cli": outs}))
""" % {"blocked": BLOCKED, "optional": OPTIONAL}


def _probe(model, image, json_out):
    out = subprocess.run([sys.executable, "-c", PROBE, str(model), str(image), str(json_out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_edge_imports_and_predicts_with_tensorflow_blocked(tiny_classifier_tflite, coral_dir, tmp_path):
    res = _probe(tiny_classifier_tflite, coral_dir / "cat.bmp", tmp_path / "pred.json")
    assert res["tf"] == [], f"TensorFlow/Keras imported by the edge runtime: {res['tf']}"
    # Every module of the package was imported under the blocker, not just a few.
    assert sorted(res["mods"]) == sorted(["edge"] + [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.")])
    assert {"edge.cli", "edge.imageio", "edge.preprocess", "edge.progress", "edge.runtime"} <= set(res["mods"])
    for mod, err in res["failed"].items():
        assert "BLOCKED-TF" not in err, f"{mod} imports TensorFlow: {err}"
        assert any(o in err for o in res["missing_optional"]), \
            f"{mod} failed to import although its optional extras are installed: {err}"
    helps = {k: v for k, v in res["cli"].items() if k != "predict"}
    assert all(v["code"] == 0 for v in helps.values()), helps
    pred = res["cli"]["predict"]
    assert pred["exc"] is None or "SystemExit" in pred["exc"], pred
    assert pred["code"] in (0, 1), pred  # 0 good, 1 defective: a verdict, not an error
    rows = json.loads((tmp_path / "pred.json").read_text())
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert len(rows) == 1 and rows[0]["verdict"] in ("good", "defective")


def test_blocker_catches_a_tensorflow_import(tmp_path):
    """The probe's blocker really raises: an edge-like module importing keras fails under it."""
    pkg = tmp_path / "edge_like"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import keras\n")
    code = PROBE.split("import edge\n")[0] + "import edge_like\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "BLOCKED-TF" in out.stderr

