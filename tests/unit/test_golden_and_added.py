"""The golden set's choice and the added-image folders of train --update (no TensorFlow)."""
import pytest
from PIL import Image

from edge.errors import DataError


def _files(n_good, n_def):
    files = [{"abspath": f"/d/good/{i}.png", "path": f"good/{i}.png", "sha256": f"g{i}", "label": 0, "type": "good"}
             for i in range(n_good)]
    files += [{"abspath": f"/d/{t}/{i}.png", "path": f"{t}/{i}.png", "sha256": f"{t}{i}", "label": 1, "type": t}
              for i in range(n_def) for t in ("crack", "hole")]
    return files


def test_golden_set_holds_only_right_verdicts_spread_over_types_and_confidence():
    import numpy as np

    from trainer.golden import choose_golden

    files = _files(20, 10)
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0, 0.7, 20), rng.uniform(0.3, 1.0, 20)])
    g = choose_golden(files, scores, 0.5, per_class=6)
    imgs = g["images"]
    assert 0 < sum(i["label"] == 0 for i in imgs) <= 6 and 0 < sum(i["label"] == 1 for i in imgs) <= 6
    assert all((i["score"] >= 0.5) == (i["label"] == 1) and i["verdict"] == ("defective" if i["label"] else "good")
               for i in imgs)
    assert {i["type"] for i in imgs if i["label"] == 1} == {"crack", "hole"}
    good = sorted(i["score"] for i in imgs if i["label"] == 0)
    assert good[-1] - good[0] > 0.2  # not only the easiest ones
    assert {i["sha256"] for i in imgs} <= {f["sha256"] for f in files}


def _img(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(p)


def test_added_folders_accept_the_rejects_layout(tmp_path):
    from trainer.data.run_contract import file_sha256
    from trainer.update import collect_added

    rej = tmp_path / "rejects"
    _img(rej / "confirmed_good" / "a.png")
    _img(rej / "confirmed_defect" / "scratch" / "b.png")
    _img(rej / "confirmed_defect" / "c.png")
    _img(rej / "overlays" / "a_overlay.png")
    _img(rej / "pending.png")  # not confirmed yet: never learned
    for good, defects in ((rej, rej), (rej / "confirmed_good", rej / "confirmed_defect")):
        added = collect_added(good, defects)
        assert [(a["label"], a["type"]) for a in added] == [(0, "good"), (1, "defect"), (1, "scratch")]
        assert [a["sha256"] for a in added] == [file_sha256(a["file"]) for a in added]
    with pytest.raises(DataError, match="empty.*no images|no images"):
        (tmp_path / "empty").mkdir()
        collect_added(tmp_path / "empty")
    with pytest.raises(DataError, match="not found"):
        collect_added(tmp_path / "nope")


def test_update_options_are_one_line_errors(tmp_path):
    from click.testing import CliRunner

    from edge.cli import main

    res = CliRunner().invoke(main, ["train", "--add-good", str(tmp_path)])
    assert res.exit_code == 2 and "add --update RUN" in res.output
    res = CliRunner().invoke(main, ["train", "--update", str(tmp_path), "--add-good", str(tmp_path), "--mode", "anomaly"])
    assert res.exit_code == 2 and "drop --mode" in res.output
    res = CliRunner().invoke(main, ["train", "--update", str(tmp_path), "--add-good", str(tmp_path)])
    assert res.exit_code == 2 and "run.json" in res.output and "Traceback" not in res.output
