"""The README's set-up commands are the ones CI and users run."""
import re

from tests.fixtures.common import ROOT


def _block(tag):
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {tag} -->\s*```bash\n(.*?)\n```\s*<!-- /{tag} -->", text, re.S)
    assert m, f"README.md has no <!-- {tag} --> block"
    return m.group(1).strip()


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1].strip() == _block("test-command")


def test_main_command_installs_and_runs_the_offline_demo():
    cmd = _block("main-command")
    assert cmd.startswith("pip install -e ") and "edgeinspect demo" in cmd
    assert "shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5" in cmd  # offline: no download
