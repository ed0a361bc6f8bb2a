"""Anomaly maths without a model: coreset coverage, good-only threshold, reference scorer, settings."""
import numpy as np
import pytest

from trainer.anomaly.calibrate import good_only_threshold
from trainer.anomaly.coreset import greedy_coreset
from trainer.anomaly.reference import nearest_distance, normalise, raw_scores, score_and_map
from trainer.anomaly.settings import DEFAULTS, anomaly_settings
from trainer.config import ConfigError


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_coreset_picks_one_point_per_cluster_before_any_second():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 32)) * 10
    labels = np.repeat(np.arange(6), 50)
    x = centres[labels] + rng.normal(size=(300, 32)) * 0.1
    idx = greedy_coreset(x, 6, proj_dim=16, seed=1)
    assert len(set(idx)) == 6 and sorted(labels[idx]) == list(range(6))
    assert list(greedy_coreset(x[:5], 10)) == list(range(5))   # k >= n keeps everything


def test_coreset_bounds_the_distance_of_every_point():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    idx = greedy_coreset(x, 200, proj_dim=0, seed=0)
    d = np.sqrt(((x[:, None, :] - x[idx][None]) ** 2).sum(-1)).min(1)
    rand = rng.choice(2000, 200, replace=False)
    d_rand = np.sqrt(((x[:, None, :] - x[rand][None]) ** 2).sum(-1)).min(1)
    assert d.max() < d_rand.max()


def test_nearest_distance_is_half_squared_euclidean_for_unit_vectors():
    rng = np.random.default_rng(2)
    f, bank = _unit(rng.normal(size=(3, 4, 5, 16))), _unit(rng.normal(size=(40, 16)))
    d = nearest_distance(f, bank)
    brute = (((f[..., None, :] - bank) ** 2).sum(-1) / 2).min(-1)
    np.testing.assert_allclose(d, brute, atol=1e-5)
    np.testing.assert_allclose(raw_scores(f, bank), brute.reshape(3, -1).max(1), atol=1e-5)
    score, amap = score_and_map(f, bank, 0.3, 0.1)
    np.testing.assert_allclose(amap, normalise(brute, 0.3, 0.1), atol=1e-4)
    np.testing.assert_allclose(score[:, 0], amap.reshape(3, -1).max(1))
    assert normalise(0.3, 0.3, 0.1) == 0.5


def test_good_only_threshold_sits_above_the_good_quantile():
    raw = np.linspace(0.10, 0.20, 101)
    t, s, info = good_only_threshold(raw, quantile=0.99, margin=1.1, span=5.0)
    assert info["median"] == pytest.approx(0.15)
    assert t == pytest.approx(0.15 + 1.1 * (info["quantile_value"] - 0.15))
    assert t > raw.max() - 1e-3 and info["val_false_alarm_rate"] <= 0.01
    assert s == pytest.approx((1 - t) / 5.0)
    assert normalise(raw, t, s).max() < 0.5 and normalise(t + 0.2, t, s) > 0.7
    assert "warning" not in info
    _, _, few = good_only_threshold([0.1, 0.2, 0.3])
    assert "only 3 good validation images" in few["warning"]
    with pytest.raises(ValueError):
        good_only_threshold([])


def test_settings_defaults_and_one_line_errors():
    s = anomaly_settings({"taps": "block_4_add, block_12_add", "bank_size": "100"})
    assert s["taps"] == ["block_4_add", "block_12_add"] and s["bank_size"] == 100
    assert anomaly_settings(None) == DEFAULTS
    with pytest.raises(ConfigError, match="unknown keys \\['bank'\\]"):
        anomaly_settings({"bank": 3})
    with pytest.raises(ConfigError, match="anomaly.margin"):
        anomaly_settings({"margin": 0.5})
    with pytest.raises(ConfigError, match="anomaly.quantile"):
        anomaly_settings({"quantile": 1.5})
