"""Path expansion for predict, and the doctor report (both without TensorFlow)."""
import io
import json
import subprocess
import sys

from click.testing import CliRunner

from edge.cli import main
from edge.inputs import expand_inputs
from tests.fixtures.common import ROOT


def test_expand_files_folders_globs_stdin(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for p in ("a/1.png", "a/deep/2.JPG", "a/notes.txt", "a/.hidden.png", "b.bmp"):
        (tmp_path / p).write_bytes(b"x")
    paths, problems = expand_inputs([str(tmp_path / "a"), str(tmp_path / "*.bmp"), str(tmp_path / "a" / "1.png")])
    rel = [p.replace(str(tmp_path) + "/", "") for p in paths]
    assert rel == ["a/1.png", "a/deep/2.JPG", "b.bmp"] and problems == []  # recursive, deduplicated
    paths, _ = expand_inputs(["-"], stdin=io.StringIO(f"{tmp_path / 'b.bmp'}\n\n{tmp_path / 'a' / 'notes.txt'}\n"))
    assert paths == [str(tmp_path / "b.bmp"), str(tmp_path / "a" / "notes.txt")]  # explicit files kept
    (tmp_path / "empty").mkdir()
    _, problems = expand_inputs([str(tmp_path / "nope.png"), str(tmp_path / "*.gif"), str(tmp_path / "empty")])
    assert [why.split()[0] for _, why in problems] == ["no", "pattern", "folder"]


def test_doctor_reports_this_machine_truthfully():
    import ai_edge_litert

    r = CliRunner().invoke(main, ["doctor", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    litert = next(b for b in rep["backends"] if b["name"] == "litert")
    assert litert["installed"] and litert["version"] == ai_edge_litert.__version__ and litert["imports"]
    assert rep["backend_auto"] == "litert"
    assert rep["numpy"] == __import__("numpy").__version__
    assert rep["edgetpu_runtime"]["loadable"] is False  # no libedgetpu on this machine
    assert rep["verdict"].startswith("ready")
    text = CliRunner().invoke(main, ["doctor"]).output
    assert "<- auto" in text and "libedgetpu1-std" in text and "verdict" in text


def test_doctor_never_imports_tensorflow():
    probe = ("import sys\nfrom click.testing import CliRunner\nfrom edge.cli import main\n"
             "r = CliRunner().invoke(main, ['doctor'])\n"
             "print(r.exit_code, any(k.split('.')[0] in ('tensorflow', 'keras') for k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "False"], out.stdout + out.stderr
