"""The device install has no TensorFlow: the edge runtime and its commands must never import it."""
import json
import pkgutil
import subprocess
import sys

import edge
from tests.fixtures.common import ROOT

PROBE = r"""
import importlib, json, pkgutil, sys
import edge
mods = ["edge"] + [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.")]
failed = {}
for m in mods:
    try:
        importlib.import_module(m)
    except ImportError as e:  # an optional extra (e.g. opencv) missing is fine, TF is not
        failed[m] = str(e)
from click.testing import CliRunner
from edge.cli import main
outs = {}
for args in (["--help"], ["predict", "--help"], ["watch", "--help"], ["doctor", "--help"]):
    r = CliRunner().invoke(main, args)
    outs[" ".join(args)] = r.exit_code
print(json.dumps({"tf": sorted(k for k in sys.modules if k.split(".")[0] in ("tensorflow", "keras")),
                  "mods": mods, "failed": failed, "exit": outs}))
"""


def _probe():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_edge_package_and_device_commands_never_import_tensorflow():
    res = _probe()
    assert res["tf"] == [], f"TensorFlow/Keras imported by the edge runtime: {res['tf']}"
    assert len(res["mods"]) >= 3
    assert all(code == 0 for code in res["exit"].values()), res["exit"]


def test_every_edge_module_is_probed():
    names = {m.name for m in pkgutil.walk_packages(edge.__path__, "edge.")}
    assert "edge.cli" in names and "edge.imageio" in names and "edge.preprocess" in names
