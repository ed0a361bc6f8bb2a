"""`edgeinspect train` options that are wired to a mode's settings."""
from click.testing import CliRunner


def test_save_maps_reaches_the_anomaly_trainer_and_the_saved_config(monkeypatch, tmp_path):
    import trainer.anomaly as anomaly
    from edge.cli import main

    seen = []
    monkeypatch.setattr(anomaly, "train_anomaly", lambda cfg, **kw: seen.append(cfg) or tmp_path / "run")
    (tmp_path / "data").mkdir()
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--mode", "anomaly", "--save-maps"])
    assert r.exit_code == 0, r.output
    assert seen and seen[0].anomaly.get("save_maps") is True
    assert seen[0].to_dict()["anomaly"]["save_maps"] is True  # so config.json re-runs with maps


def test_without_save_maps_the_anomaly_settings_are_untouched(monkeypatch, tmp_path):
    import trainer.anomaly as anomaly
    from edge.cli import main

    seen = []
    monkeypatch.setattr(anomaly, "train_anomaly", lambda cfg, **kw: seen.append(cfg) or tmp_path / "run")
    (tmp_path / "data").mkdir()
    r = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "data"), "--mode", "anomaly"])
    assert r.exit_code == 0, r.output
    from trainer.anomaly.settings import anomaly_settings

    # Saved resolved (every default pinned), and the flag's absence leaves maps off.
    assert seen[0].anomaly == anomaly_settings({}) and seen[0].anomaly["save_maps"] is False


def test_set_reaches_every_field_and_print_config_shows_the_resolved_config(tmp_path):
    import json

    from edge.cli import main
    from trainer.anomaly.settings import DEFAULTS

    r = CliRunner().invoke(main, ["train", "--mode", "anomaly", "--set", "anomaly.bank_size=1024", "--set", "k=3",
                                  "--set", "augment.flip=false", "--set", "defects_per_type=null",
                                  "--set", "type_loss_weight=0.25", "--print-config"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(r.output)
    assert cfg["anomaly"]["bank_size"] == 1024
    assert set(cfg["anomaly"]) == set(DEFAULTS) and cfg["anomaly"]["span"] == DEFAULTS["span"]  # resolved, not {}
    assert cfg["k"] == 3 and cfg["augment"]["flip"] is False and cfg["augment"]["zoom"] == 0.1
    assert cfg["defects_per_type"] is None and cfg["type_loss_weight"] == 0.25
    assert not (tmp_path / "runs").exists()  # printed, nothing trained


def test_set_names_the_closest_key_and_rejects_bad_values():
    from edge.cli import main

    for args, want in ((["--set", "anomaly.bank_sise=3"], "did you mean 'anomaly.bank_size'?"),
                       (["--set", "fine_tune_epoch=3"], "did you mean 'fine_tune_epochs'?"),
                       (["--set", "augment.flipp=true"], "did you mean 'augment.flip'?"),
                       (["--set", "epochs"], "expected KEY=VALUE"),
                       (["--set", "alpha=0.3"], "alpha=0.3 is not a MobileNetV2 width"),
                       (["--mode", "anomaly", "--set", "anomaly.max_false_reject=0"], "anomaly.max_false_reject=0.0 must be in (0, 0.5)")):
        r = CliRunner().invoke(main, ["train", *args, "--print-config"])
        assert r.exit_code == 2, (args, r.output)
        assert want in r.output and "Traceback" not in r.output, (args, r.output)


def test_set_values_are_parsed_as_literals_never_evaluated():
    from trainer.config import parse_value

    assert parse_value("1024") == 1024 and parse_value("true") is True and parse_value("True") is True
    assert parse_value("null") is None and parse_value("[1, 2]") == [1, 2] and parse_value("(3, 4)") == (3, 4)
    assert parse_value("recall@0.99") == "recall@0.99"
    assert parse_value("__import__('os').getcwd()") == "__import__('os').getcwd()"  # stays text
