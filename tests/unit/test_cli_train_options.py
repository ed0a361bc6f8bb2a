"""`edgeinspect train` options that are wired to a mode's settings."""
from click.testing import CliRunner


def test_save_maps_reaches_the_anomaly_trainer_and_the_saved_config(monkeypatch, tmp_path):
    import trainer.anomaly as anomaly
    from edge.cli import main

    seen = []
    monkeypatch.setattr(anomaly, "train_anomaly", lambda cfg: seen.append(cfg) or tmp_path / "run")
    (tmp_path / "data").mkdir()
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--mode", "anomaly", "--save-maps"])
    assert r.exit_code == 0, r.output
    assert seen and seen[0].anomaly.get("save_maps") is True
    assert seen[0].to_dict()["anomaly"]["save_maps"] is True  # so config.json re-runs with maps


def test_without_save_maps_the_anomaly_settings_are_untouched(monkeypatch, tmp_path):
    import trainer.anomaly as anomaly
    from edge.cli import main

    seen = []
    monkeypatch.setattr(anomaly, "train_anomaly", lambda cfg: seen.append(cfg) or tmp_path / "run")
    (tmp_path / "data").mkdir()
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--mode", "anomaly"])
    assert r.exit_code == 0, r.output
    assert "save_maps" not in seen[0].anomaly
