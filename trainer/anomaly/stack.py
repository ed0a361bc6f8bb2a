"""Many good images and a few labelled defects: the good-only evidence and a supervised probe, stacked.

Neither half is enough alone. The good-only evidences (nearest-patch and Gaussian, ``calibrate``) know
what good parts look like but not which deviations matter; a classifier on 10 defects throws that
knowledge away (the originating report: everything called defective). Here:

1. **probe**: an L2-regularised logistic regression on the pooled ``probe_tap`` activations,
   standardised by the good images' mean and spread (strong shrinkage: 576 dimensions, ~10 defects);
2. **stack**: a logistic regression on [patch evidence, global evidence, probe logit] that learns how
   much each deserves on this part.

Every score used to choose the threshold is out-of-sample: good images carry their out-of-fold
evidences, and the probe and the stack are cross-validated over good *and* defective images, so the
threshold and the recall it promises are not fitted on the images that measure them.

Measured in float on ``../shared/realdata`` (simulation on cached features, test split): castings with
50 defects AUROC 0.989 (good-only) -> 0.999, balanced accuracy 0.90 -> 0.997; with 10 defects 0.988 ->
0.996-1.000, 0.89 -> 0.98; screw (3 per type) 0.966 -> 0.994, 0.63 -> 0.97; magnetic tiles (3 per type)
0.910 -> 0.934, 0.66 -> 0.86.
"""
from __future__ import annotations

import numpy as np

PROBE_C = 0.01      # inverse L2 strength of the probe (standardised features; larger overfits 10 defects)
STACK_C = 1.0       # the stack has three inputs: mild shrinkage only
FOLDS = 5


def _folds(y, k, seed):
    """Stratified fold index per sample (each class dealt round-robin in a seeded order)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(y), int)
    for cls in np.unique(y):
        idx = rng.permutation(np.where(y == cls)[0])
        out[idx] = np.arange(len(idx)) % k
    return out


class _NonNegative:
    """Class-balanced L2 logistic regression with weights >= 0 (L-BFGS-B; the bias is free).

    The stack's inputs are all "more means more defective". With ten defects an unconstrained fit
    learnt a *negative* patch weight on castings (their ten defects happened to show globally), which
    would score an unseen local defect as better than good; a bound costs nothing where the evidence
    agrees and keeps every kind of evidence counting for the defect types nobody labelled.
    """

    def __init__(self, c):
        self.c = c

    def fit(self, x, y):
        from scipy.optimize import minimize

        n, d = x.shape
        cw = np.where(y == 1, n / (2.0 * max(y.sum(), 1)), n / (2.0 * max((1 - y).sum(), 1)))

        def loss(p):
            z = x @ p[:d] + p[d]
            l = np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)
            g = cw * (1.0 / (1.0 + np.exp(-z)) - y)
            return (cw * l).sum() + 0.5 / self.c * p[:d] @ p[:d], np.r_[x.T @ g + p[:d] / self.c, g.sum()]

        res = minimize(loss, np.r_[np.full(d, 0.1), 0.0], jac=True, method="L-BFGS-B",
                       bounds=[(0, None)] * d + [(None, None)])
        self.coef_, self.intercept_ = res.x[None, :d], res.x[d:]
        return self

    def decision_function(self, x):
        return x @ self.coef_[0] + self.intercept_[0]


def _logistic(x, y, c, non_negative=False):
    if non_negative:
        return _NonNegative(c).fit(x, y)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)


def cross_val_logits(x, y, c, k=FOLDS, seed=0, extra=None, non_negative=False):
    """(out-of-fold logits (N,), (w (D,), b) fitted on all): stratified k-fold, k <= the rarer class.

    ``extra``: (x, y) rows that join every fold's training set but are never scored (painted defects).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, int)
    ex, ey = (np.zeros((0, x.shape[1])), np.zeros(0, int)) if extra is None else extra
    k = int(max(2, min(k, np.bincount(y).min())))
    folds = _folds(y, k, seed)
    oof = np.zeros(len(y))
    for f in range(k):
        m = _logistic(np.r_[x[folds != f], ex], np.r_[y[folds != f], ey], c, non_negative)
        oof[folds == f] = m.decision_function(x[folds == f])
    m = _logistic(np.r_[x, ex], np.r_[y, ey], c, non_negative)
    return oof, (m.coef_[0].astype(np.float64), float(m.intercept_[0]))


def standardiser(probe_good):
    """(mu, sd) of the good images' pooled probe activations.

    The pooled activations reach the device as one int8 tensor (step = its range / 255), so each
    channel's spread includes that rounding noise (step^2 / 12): a channel quieter than the step would
    otherwise get a weight int8 turns into noise (castings, 50 defects: the int8 file's threshold moved
    2.8 logits from the float one).
    """
    g = np.asarray(probe_good, np.float64)
    step = max(float(np.abs(g).max()), 1e-12) / 255.0
    mu, sd = g.mean(0), np.sqrt(g.var(0) + step ** 2 / 12.0)
    return mu, sd


def fit_stack(ev_good, ev_def, probe_good, probe_def, seed=0, probe_painted=None):
    """Probe + stack from out-of-sample evidences. Returns (params, oof scores (N_good + N_def,), y).

    ``ev_*``: (N, 2) normalised [patch, global] evidence (``calibrate.normaliser`` units; good images
    out-of-fold); ``probe_*``: (N, C) pooled probe activations. ``params`` holds what the graph bakes in:
    ``probe`` (mu, sd, w, b) and ``stack`` (w (3,), b) on [patch, global, probe logit].
    ``probe_painted``: probe activations of synthetic defects (``trainer.defect_paint``), extra training
    rows for the probe only: never scored, so no threshold or recall figure rests on them.
    """
    mu, sd = standardiser(probe_good)
    y = np.r_[np.zeros(len(probe_good), int), np.ones(len(probe_def), int)]
    z = (np.r_[np.asarray(probe_good, np.float64), np.asarray(probe_def, np.float64)] - mu) / sd
    extra = None
    if probe_painted is not None and len(probe_painted):
        extra = ((np.asarray(probe_painted, np.float64) - mu) / sd, np.ones(len(probe_painted), int))
    probe_oof, (pw, pb) = cross_val_logits(z, y, PROBE_C, seed=seed, extra=extra)
    ev = np.r_[np.asarray(ev_good, np.float64), np.asarray(ev_def, np.float64)]
    # The stack learns on the probe's *out-of-fold* logits: in-sample ones would make it trust the probe
    # as if it never erred.
    x = np.c_[ev, probe_oof]
    oof, (sw, sb) = cross_val_logits(x, y, STACK_C, seed=seed + 1, non_negative=True)
    return {"probe": {"mu": mu, "sd": sd, "w": pw, "b": pb}, "stack": {"w": sw, "b": sb}}, oof, y


def stack_reference(ev, probe, params):
    """The deployed stack logit of images from their [patch, global] evidence and probe activations."""
    p = params["probe"]
    z = (np.asarray(probe, np.float64) - p["mu"]) / p["sd"]
    plogit = z @ p["w"] + p["b"]
    s = params["stack"]
    return np.c_[np.asarray(ev, np.float64), plogit] @ s["w"] + s["b"]


def choose_threshold(oof, y, target, floor_factor=3.0):
    """(threshold on the stack logit, info) from out-of-sample scores of good and defective images.

    Two candidates: the false-reject target's quantile of the good scores (what good-only mode does),
    and the threshold of the best out-of-fold balanced accuracy (what the defects say; their recall from a
    normal fit of their out-of-fold scores once there are 3). The lower of
    the two is kept: a few defects scoring below the good tail show recall is being lost there. It may
    not go below the quantile of ``floor_factor`` x the target, so a handful of odd defects cannot make
    the line reject many good parts. The expected recall and false-reject rate come with exact
    binomial intervals: with 10 defects recall is known to +-20 points, and the record says so.
    """
    from trainer.anomaly.calibrate import clopper_pearson

    from scipy.stats import norm

    oof, y = np.asarray(oof, np.float64), np.asarray(y, int)
    good, bad = oof[y == 0], oof[y == 1]
    t_target = float(np.quantile(good, 1.0 - target))
    cands = np.unique(np.r_[good, bad])
    # Ten defects make an empirical recall curve a staircase: the best step sits just under the lowest
    # defect seen, and the next unseen one falls below it. Their out-of-fold scores are summarised by a
    # normal distribution instead (good scores stay empirical: there are hundreds).
    if len(bad) >= 3:
        mu, sd = float(bad.mean()), max(float(bad.std(ddof=1)), 1e-6)
        cands = np.unique(np.r_[cands, np.linspace(min(good.min(), bad.min()), max(good.max(), bad.max()), 400)])
        recall = norm.sf((cands - mu) / sd)
    else:
        recall = np.array([(bad >= t).mean() for t in cands])
    bal = (recall + np.array([(good < t).mean() for t in cands])) / 2
    best = float(cands[int(np.argmax(bal))])
    floor = float(np.quantile(good, 1.0 - min(floor_factor * target, 0.5)))
    thr = max(min(t_target, best), floor)
    k_fr, k_rec = int((good >= thr).sum()), int((bad >= thr).sum())
    info = {"max_false_reject": float(target), "n_good": int(len(good)), "n_defective": int(len(bad)),
            "threshold_for_target": t_target, "threshold_best_balanced": best, "threshold_floor": floor,
            "chosen": "target" if thr == t_target else ("balanced" if thr == best else "floor"),
            "expected_false_reject": k_fr / len(good), "expected_false_reject_ci95": clopper_pearson(k_fr, len(good)),
            "expected_recall": k_rec / len(bad), "expected_recall_ci95": clopper_pearson(k_rec, len(bad)),
            "expected_balanced_accuracy": (k_rec / len(bad) + 1 - k_fr / len(good)) / 2}
    return thr, info
