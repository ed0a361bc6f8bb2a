"""Training configuration: one dataclass, saved next to every run and re-runnable.

``edgeinspect train --config runs/train/exp/config.json`` rebuilds exactly the
run that wrote it, so every field that changes the result lives here, unknown
keys are errors (a typo must not silently fall back to a default) and values are
checked before any image is read.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import EdgeInspectError
from trainer.data.split import DEFECTS_PER_TYPE, K_FOLDS, VAL_FRACTION

MODES = ("auto", "classifier", "anomaly", "combined")  # auto: trainer/mode_choice.py
DEVICES = ("auto", "cpu", "gpu", "tpu")
ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)  # what keras.applications.MobileNetV2 accepts


class ConfigError(EdgeInspectError):
    pass


def default_augment():
    # Small geometric/photometric jitter: parts sit roughly centred under fixed lighting.
    return {"flip": True, "rotation": 0.05, "zoom": 0.1, "brightness": 0.1, "contrast": 0.1}


def no_augment():
    """Every augmentation off (``--no-augment``), keyed like :func:`default_augment`."""
    return {k: (False if isinstance(v, bool) else 0) for k, v in default_augment().items()}


@dataclass
class TrainConfig:
    # data and split
    data: str = ""
    manifest: str | None = None
    mode: str = "auto"
    protocol: str = "supervised"
    val_fraction: float = VAL_FRACTION
    defects_per_type: int | None = DEFECTS_PER_TYPE   # ignored when defects_total is set
    defects_total: int | None = None
    k: int = K_FOLDS
    fold: int = 0
    seed: int = 0
    # model
    alpha: float = 1.0
    input_size: int | list = 224
    weights: str | None = "imagenet"
    dropout: float = 0.2
    # phase 1: heads on the frozen backbone
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 8
    aug_copies: int = 2
    augment: dict = field(default_factory=default_augment)
    type_loss_weight: float = 0.5
    # phase 2: fine-tune the top inverted-residual blocks (0 epochs = skip)
    fine_tune_epochs: int = 10
    fine_tune_blocks: int = 2
    fine_tune_learning_rate: float = 1e-4
    # decision threshold chosen on the val split
    threshold_policy: str = "recall@0.99"
    # hardware
    device: str = "auto"
    tpu: str | None = None
    # anomaly mode settings (validated by trainer.anomaly)
    anomaly: dict = field(default_factory=dict)
    # region of interest: a mask image, white = inspect, black = ignore (trainer/data/roi.py)
    roi: str | None = None
    # output
    project: str = "runs/train"
    name: str = "exp"

    def __post_init__(self):
        self.validate()

    # -- validation -----------------------------------------------------------------------------
    def validate(self):
        def bad(key, why):
            raise ConfigError(f"config: {key}={getattr(self, key)!r} {why}")

        if self.mode not in MODES:
            bad("mode", f"is not one of {', '.join(MODES)}")
        if self.device not in DEVICES:
            bad("device", f"is not one of {', '.join(DEVICES)}")
        try:
            self.alpha = float(self.alpha)
        except (TypeError, ValueError):
            bad("alpha", "is not a number")
        if self.alpha not in ALPHAS:
            bad("alpha", f"is not a MobileNetV2 width; use one of {', '.join(map(str, ALPHAS))}")
        if isinstance(self.input_size, (list, tuple)):
            if len(self.input_size) != 2:
                bad("input_size", "must be one number or [height, width]")
            self.input_size = [int(v) for v in self.input_size]
            sizes = self.input_size
        else:
            self.input_size = int(self.input_size)
            sizes = [self.input_size]
        if min(sizes) < 32:
            bad("input_size", "must be at least 32 pixels (MobileNetV2 downsamples 32x)")
        for key in ("epochs", "fine_tune_epochs", "aug_copies", "patience", "k", "fold", "seed"):
            if int(getattr(self, key)) < 0:
                bad(key, "must be >= 0")
            setattr(self, key, int(getattr(self, key)))
        if self.batch_size < 1:
            bad("batch_size", "must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            bad("dropout", "must be in [0, 1)")
        if not 0.0 < self.val_fraction < 1.0:
            bad("val_fraction", "must be between 0 and 1")
        for key in ("defects_per_type", "defects_total"):
            v = getattr(self, key)
            if v is not None and int(v) < 0:
                bad(key, "must be >= 0")
        if self.fine_tune_blocks < 0 or self.fine_tune_blocks > 17:
            bad("fine_tune_blocks", "must be in 0..17 (MobileNetV2 has 17 inverted-residual blocks)")
        if not isinstance(self.augment, dict):
            bad("augment", "must be a mapping like {\"flip\": true, \"rotation\": 0.05}")
        unknown = set(self.augment) - set(default_augment())
        if unknown:
            bad("augment", f"has unknown keys {sorted(unknown)}; known: {sorted(default_augment())}")
        self.augment = {**default_augment(), **self.augment}
        if not isinstance(self.anomaly, dict):
            bad("anomaly", "must be a mapping")
        self._check_policy()
        if isinstance(self.weights, str) and self.weights.lower() in ("none", ""):
            self.weights = None

    def _check_policy(self):
        p = self.threshold_policy
        ok = p == "max-f1"
        for prefix in ("recall@", "fpr@"):
            if p.startswith(prefix):
                try:
                    ok = 0.0 < float(p[len(prefix):]) <= 1.0
                except ValueError:
                    ok = False
        if not ok:
            raise ConfigError(f"config: threshold_policy={p!r} is not max-f1, recall@R or fpr@F (R, F in 0..1)")

    # -- (de)serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path):
        from edge.atomic import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict, source="config") -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object of training settings")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown config keys {unknown}; valid keys: {', '.join(sorted(known))}")
        try:
            return cls(**d)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {str(exc).removeprefix('config: ')}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def replace(self, **overrides) -> "TrainConfig":
        """A copy with ``overrides`` applied (``None`` values mean "not given" and are skipped)."""
        d = self.to_dict()
        d.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(d, source="options")


def load_config(path=None, **overrides) -> TrainConfig:
    """Config from a JSON file (or defaults), then command-line ``overrides`` on top."""
    base = {}
    if path is not None:
        from edge.atomic import read_json

        p = Path(path)
        base = read_json(p, ConfigError, missing="config file not found")
        cfg = TrainConfig.from_dict(base, source=os.fspath(p))
    else:
        cfg = TrainConfig()
    return cfg.replace(**overrides) if overrides else cfg


# -- key=value overrides (``edgeinspect train --set``) ----------------------------------------------
def parse_value(text: str):
    """A ``--set`` value: JSON (``1024``, ``true``, ``null``, ``[1, 2]``), else a Python literal
    (``True``, ``(1, 2)``), else the text itself. Never ``eval``: a command line is not code."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _unknown(key, known, prefix=""):
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"did you mean {prefix + close[0]!r}?" if close else f"known: {', '.join(prefix + k for k in sorted(known))}"
    return ConfigError(f"--set: unknown key {prefix + key!r}; {hint}")


def apply_sets(cfg: TrainConfig, pairs, nested=None) -> TrainConfig:
    """``cfg`` with ``key=value`` pairs applied (dotted keys reach into dict fields, e.g. ``anomaly.bank_size``).

    ``nested``: {dict field: its known keys}; ``augment``'s are known here, the caller adds
    ``anomaly``'s (trainer.anomaly.settings owns them). Unknown keys name the closest known one.
    """
    nested = {"augment": list(default_augment()), **(nested or {})}
    d = cfg.to_dict()
    fields = list(d)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set anomaly.bank_size=1024")
        top, dot, sub = key.partition(".")
        if top not in d:
            raise _unknown(key, fields + [f"{n}.{k}" for n, ks in nested.items() for k in ks])
        value = parse_value(text.strip())
        if not dot:
            d[top] = value
            continue
        if top not in nested:
            raise ConfigError(f"--set {key}: {top} is not a group of settings; use --set {top}=VALUE")
        if sub not in nested[top]:
            raise _unknown(sub, list(nested[top]), f"{top}.")
        d[top] = {**(d[top] or {}), sub: value}
    return TrainConfig.from_dict(d, source="--set")

