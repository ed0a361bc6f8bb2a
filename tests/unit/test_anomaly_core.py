"""Anomaly maths without a model: coreset coverage, good-only threshold, reference scorer, settings."""
import numpy as np
import pytest

from trainer.anomaly.calibrate import clopper_pearson, scorer_params, threshold_for_target
from trainer.anomaly.gaussian import fit_gaussian, mahalanobis
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
    unit = 2.0 / 6.0  # the clamp covers every distance (unit vectors are at most 2 apart)
    params = {"bank": bank, "t": 0.3, "s": 0.1, "unit": unit, "patch": (unit / 0.1, -0.3 / 0.1)}
    score, amap = score_and_map([f], params)
    np.testing.assert_allclose(amap, normalise(brute, 0.3, 0.1), atol=1e-4)
    # patch evidence alone: the score's logit is a * max z + b with z the map's logit
    np.testing.assert_allclose(score[:, 0], amap.reshape(3, -1).max(1), atol=1e-6)
    assert normalise(0.3, 0.3, 0.1) == 0.5


def test_threshold_meets_the_false_reject_target_out_of_sample():
    rng = np.random.default_rng(3)
    good = rng.gamma(4.0, 0.05, 2000)
    thr, info = threshold_for_target(good, 0.01)
    fresh = rng.gamma(4.0, 0.05, 200000)           # unseen good parts from the same process
    assert abs(np.mean(fresh >= thr) - 0.01) < 0.004
    lo, hi = info["expected_false_reject_ci95"]
    assert lo < 0.01 < hi and info["n_good"] == 2000 and "warning" not in info
    _, few = threshold_for_target(good[:100], 0.01)
    assert few["smallest_verifiable_rate"] == pytest.approx(1 - 0.05 ** (1 / 100))
    assert "cannot verify" in few["warning"]
    with pytest.raises(ValueError):
        threshold_for_target([], 0.01)


def test_clopper_pearson_brackets_the_rate():
    assert clopper_pearson(0, 100)[0] == 0.0 and clopper_pearson(0, 100)[1] == pytest.approx(0.0362, abs=1e-3)
    lo, hi = clopper_pearson(5, 100)
    assert lo < 0.05 < hi and hi < 0.12


def test_gaussian_whitening_gives_the_mahalanobis_distance():
    rng = np.random.default_rng(4)
    a = rng.normal(size=(6, 6))
    x = rng.normal(size=(4000, 6)) @ a + 3.0
    mu, w = fit_gaussian(x, groups=1)
    d = mahalanobis(x, mu, w)
    assert d.mean() == pytest.approx(6.0, rel=0.1)  # chi-square with 6 degrees of freedom
    cov = np.cov(x.T)
    probe = x[:5]
    exact = np.einsum("ij,jk,ik->i", probe - x.mean(0), np.linalg.inv(cov), probe - x.mean(0))
    np.testing.assert_allclose(mahalanobis(probe, mu, w), exact, rtol=0.05)


def test_combined_score_decides_at_half_for_the_target_and_either_evidence_fires():
    rng = np.random.default_rng(5)
    bank = _unit(rng.normal(size=(64, 16)))
    good_p, good_g = rng.normal(0.2, 0.02, 500), rng.chisquare(8, 500)
    mu, w = np.zeros(8, np.float32), np.eye(8, dtype=np.float32)
    params, cal = scorer_params(bank, good_p, 0.05, global_good=good_g, gauss=(mu, w))
    assert cal["evidence"] == "patch+global"
    # the same maths as the graph: logit = max(a_p * clamp(d / unit) + b_p, a_g * m2 + b_g)
    near = np.clip(good_p / params["unit"], 0, 6)
    lp = params["patch"][0] * near + params["patch"][1]
    lg = params["global"][0] * good_g + params["global"][1]
    logit = np.maximum(lp, lg)
    assert np.mean(logit >= 0) == pytest.approx(0.05, abs=0.01)
    # a part far off in only one kind of evidence is rejected
    assert params["patch"][0] * min(0.6 / params["unit"], 6) + params["patch"][1] > 0
    assert 6 * params["unit"] >= 2 * params["t"]          # the clamp keeps the threshold region resolved
    assert params["global"][0] * 200.0 + params["global"][1] > 0
    only_patch, cal_p = scorer_params(bank, good_p, 0.05)
    assert "global" not in only_patch and cal_p["evidence"] == "patch"
    only_global, cal_g = scorer_params(bank, good_p, 0.05, global_good=good_g, gauss=(mu, w), evidence="global")
    assert "patch" not in only_global and cal_g["evidence"] == "global"
    assert np.mean(only_global["global"][0] * good_g + only_global["global"][1] >= 0) == pytest.approx(0.05, abs=0.01)


def test_variant_threshold_follows_a_shifted_variant():
    from export.variant_threshold import NEAREST, nearest_indices, variant_threshold

    rng = np.random.default_rng(6)
    ref = 1 / (1 + np.exp(-rng.normal(-1, 2, 400)))
    lg = np.log(ref / (1 - ref)) + 0.4                      # the variant scores everything a bit higher
    got = 1 / (1 + np.exp(-lg))
    thr, info = variant_threshold(ref, got, 0.5)
    assert info["shift_logit"] == pytest.approx(0.4, abs=0.02)
    assert np.mean((ref >= 0.5) == (got >= thr)) > 0.995
    assert np.mean((ref >= 0.5) == (got >= 0.5)) < np.mean((ref >= 0.5) == (got >= thr))
    same, _ = variant_threshold(ref, ref, 0.5)
    assert same == pytest.approx(0.5)
    # export runs a variant only on the images nearest the float decision: the same threshold
    near = nearest_indices(ref, 0.5)
    assert len(near) == NEAREST and np.abs(ref[near] - 0.5).max() <= np.sort(np.abs(ref - 0.5))[NEAREST] + 1e-9
    assert variant_threshold(ref[near], got[near], 0.5)[0] == thr


def test_settings_defaults_and_one_line_errors():
    s = anomaly_settings({"taps": "block_4_add, block_12_add", "bank_size": "100"})
    assert s["taps"] == ["block_4_add", "block_12_add"] and s["bank_size"] == 100
    assert anomaly_settings(None) == DEFAULTS
    with pytest.raises(ConfigError, match="unknown keys \\['bank'\\]"):
        anomaly_settings({"bank": 3})
    with pytest.raises(ConfigError, match="anomaly.max_false_reject"):
        anomaly_settings({"max_false_reject": 0.0})
    with pytest.raises(ConfigError, match="anomaly.gain"):
        anomaly_settings({"gain": float("nan")})
    with pytest.raises(ConfigError, match="anomaly.folds"):
        anomaly_settings({"folds": 1})


def test_levels_scale_loud_channels_down_to_the_median_and_none_up():
    from trainer.anomaly.model import LEVEL_HEADROOM, levels_for

    rng = np.random.default_rng(0)
    pooled = rng.uniform(0, 1, (50, 8)) * np.array([0.1, 0.2, 0.3, 0.4, 1.0, 2.0, 3.0, 4.0])
    scale, anchor = levels_for(pooled)
    m = pooled.max(0)
    level = float(np.median(m))
    assert scale.dtype == np.float32 and scale.max() <= 1.0
    np.testing.assert_allclose((pooled * scale).max(0), np.minimum(m, level), rtol=1e-6)
    assert np.all(scale[m <= level] == 1.0) and anchor == pytest.approx(LEVEL_HEADROOM * level)
    s0, a0 = levels_for(np.zeros((4, 3)))  # a dead tap: nothing to level, still a usable range
    assert np.all(s0 == 1.0) and a0 > 0
