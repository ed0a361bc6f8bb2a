"""Combined-mode maths without a backbone: the stack, its threshold, defect-type prototypes, auto mode."""
import numpy as np
import pytest

from trainer.anomaly import prototypes as P
from trainer.anomaly.stack import choose_threshold, cross_val_logits, fit_stack, stack_reference
from trainer.metrics import auroc, type_accuracy_on_caught
from trainer.mode_choice import choose_mode


def _evidence(rng, n_good, n_def, probe_dim=40):
    """Good parts: evidences ~N(0, 0.5); defects: one probe direction moves, the patch evidence a little."""
    d = np.sin(np.arange(probe_dim) + 1.0)   # the same direction for training and fresh parts
    d /= np.linalg.norm(d)
    ev_g = rng.normal(0, 0.5, (n_good, 2))
    ev_d = rng.normal(0, 0.5, (n_def, 2)) + [0.8, 0.0]
    pg = rng.normal(size=(n_good, probe_dim)) + 5.0
    pd = rng.normal(size=(n_def, probe_dim)) + 5.0 + 3.0 * d
    return ev_g, ev_d, pg, pd


def test_stack_uses_the_probe_the_good_only_evidence_misses():
    rng = np.random.default_rng(0)
    ev_g, ev_d, pg, pd = _evidence(rng, 200, 12)
    params, oof, y = fit_stack(ev_g, ev_d, pg, pd, seed=0)
    assert len(oof) == 212 and y.sum() == 12
    # fresh parts from the same process, scored the way the graph will
    tg, td, tpg, tpd = _evidence(np.random.default_rng(1), 300, 300)
    s = stack_reference(np.r_[tg, td], np.r_[tpg, tpd], params)
    yt = np.r_[np.zeros(300), np.ones(300)]
    assert auroc(yt, s) > 0.97                        # the probe found the defects' direction
    assert auroc(yt, np.r_[tg, td].max(1)) < 0.85     # what the good-only evidence alone gets
    assert params["stack"]["w"][2] > 0                # and the stack trusts it
    assert auroc(y, oof) > 0.9                        # out-of-fold scores say so before the test does


def test_cross_val_logits_are_out_of_fold():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 30))
    y = np.r_[np.zeros(50, int), np.ones(10, int)]   # labels unrelated to x: nothing to learn
    oof, (w, b) = cross_val_logits(x, y, c=100.0)
    fit = x @ w + b
    assert auroc(y, fit) > 0.95       # in-sample, a weakly regularised fit memorises noise ...
    assert auroc(y, oof) < 0.8        # ... out-of-fold logits do not believe it


def test_threshold_meets_the_target_or_the_defects_whichever_is_lower():
    rng = np.random.default_rng(3)
    good = rng.normal(0, 1, 400)
    bad = rng.normal(2.0, 1, 20)            # defects overlap the good tail: the target quantile loses recall
    oof, y = np.r_[good, bad], np.r_[np.zeros(400, int), np.ones(20, int)]
    thr, info = choose_threshold(oof, y, 0.01)
    assert info["chosen"] in ("balanced", "floor") and thr < info["threshold_for_target"]
    assert thr >= np.quantile(good, 0.97) - 1e-9   # never below the floor (3x the target)
    assert info["expected_false_reject"] <= 0.03 + 1 / 400
    lo, hi = info["expected_recall_ci95"]
    assert lo < info["expected_recall"] < hi and hi - lo > 0.2   # 20 defects: a wide interval, said
    # well-separated defects: the target's threshold already catches them, and it is kept
    thr2, info2 = choose_threshold(np.r_[good, bad + 6], y, 0.01)
    assert info2["chosen"] == "target" and info2["expected_recall"] == 1.0


def test_prototypes_name_types_and_say_unknown_when_nothing_is_close():
    rng = np.random.default_rng(4)
    centres = P.unit(rng.normal(size=(3, 16)))
    types = np.repeat(["crack", "cut", "hole"], 4)
    desc = P.unit(centres[[0] * 4 + [1] * 4 + [2] * 4] + 0.15 * rng.normal(size=(12, 16)))
    names, protos, floor, info = P.fit_prototypes(desc, types)
    assert names == ["crack", "cut", "hole"] and info["examples"] == {"crack": 4, "cut": 4, "hole": 4}
    fresh = P.unit(centres[[0, 1, 2, 2]] + 0.15 * rng.normal(size=(4, 16)))
    assert P.predict_types(fresh, names, protos, floor) == ["crack", "cut", "hole", "hole"]
    stranger = P.unit(rng.normal(size=(1, 16)) - centres.sum(0))   # far from every prototype
    assert P.predict_types(stranger, names, protos, floor) == [P.UNKNOWN]


def test_attention_pool_describes_the_anomalous_cells():
    rng = np.random.default_rng(5)
    patches = P.unit(rng.normal(size=(2, 6, 6, 8)))
    defect = P.unit(rng.normal(size=8))
    patches[:, 2, 3] = defect
    near = np.full((2, 6, 6), 0.5)
    near[:, 2, 3] = 3.0
    pooled = P.attention_pool(patches, near, beta_eff=10.0)
    assert np.all(pooled @ defect > 0.99)
    flat = P.attention_pool(patches, near, beta_eff=0.0)    # no attention: the plain mean
    assert np.all(flat @ defect < 0.9)


def test_type_accuracy_counts_caught_defects_only():
    true = ["good", "crack", "crack", "cut", "cut", "hole"]
    pred = ["good", "crack", "cut", "cut", "unknown", "hole"]
    caught = [False, True, True, True, True, False]          # the hole was missed: not counted
    rep = type_accuracy_on_caught(true, pred, caught)
    assert rep["n"] == 4 and rep["accuracy"] == 0.5
    assert rep["per_type"] == {"crack": {"accuracy": 0.5, "n": 2}, "cut": {"accuracy": 0.5, "n": 2}}
    assert np.isnan(type_accuracy_on_caught(["good"], ["good"], [True])["accuracy"])


@pytest.mark.parametrize("n_def, mode", [(0, "anomaly"), (1, "anomaly"), (2, "combined"), (50, "combined")])
def test_auto_mode_follows_the_labelled_defects(n_def, mode):
    files = {"train": [{"label": 0, "type": "good"}] * 30 + [{"label": 1, "type": "crack"}] * n_def,
             "val": [{"label": 0, "type": "good"}] * 5}
    got, why = choose_mode(files)
    assert got == mode and f"{n_def} defective" in why.replace("no defective", "0 defective")


def test_painted_defects_change_a_region_not_the_whole_part():
    from trainer.defect_paint import KINDS, paint, paint_many

    rng = np.random.default_rng(6)
    img = np.full((64, 64, 3), 128, np.uint8)
    donor = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)  # a checkerboard
    for kind in KINDS:
        out = paint(img, donor, np.random.default_rng(7), kind)
        changed = np.abs(out.astype(int) - img).max(-1) > 10
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert 0.002 < changed.mean() < 0.5, kind      # a defect: some pixels, never the whole image
    a, b = paint_many(np.stack([img, donor]), 3, seed=1), paint_many(np.stack([img, donor]), 3, seed=1)
    assert a.shape == (3, 64, 64, 3) and np.array_equal(a, b)  # seeded: a re-run paints the same defects
    with pytest.raises(ValueError, match="unknown defect kind"):
        paint(img, donor, rng, "stain")


def test_extra_rows_train_every_fold_but_are_never_scored():
    rng = np.random.default_rng(8)
    x = np.r_[rng.normal(0, 1, (40, 5)), rng.normal(0, 1, (4, 5)) + [1.5, 0, 0, 0, 0]]
    y = np.r_[np.zeros(40, int), np.ones(4, int)]
    extra = (rng.normal(0, 1, (30, 5)) + [0, 3.0, 0, 0, 0], np.ones(30, int))   # synthetic: another direction
    oof, (w, _) = cross_val_logits(x, y, 1.0)
    oof_x, (wx, _) = cross_val_logits(x, y, 1.0, extra=extra)
    assert len(oof_x) == len(y)
    assert wx[1] > w[1] + 0.3            # the painted rows pulled the probe towards their direction


def test_stack_weights_never_go_negative():
    rng = np.random.default_rng(9)
    # the defects at hand happen to sit LOW on the first evidence: an unconstrained fit would learn -w
    x = np.r_[rng.normal(0, 1, (100, 3)), rng.normal(0, 1, (10, 3)) + [-1.0, 2.0, 2.0]]
    y = np.r_[np.zeros(100, int), np.ones(10, int)]
    _, (w_free, _) = cross_val_logits(x, y, 1.0)
    oof, (w, b) = cross_val_logits(x, y, 1.0, non_negative=True)
    assert w_free[0] < 0 and w[0] >= 0 and w[1] > 0.3 and w[2] > 0.3
    assert auroc(y, oof) > 0.9
