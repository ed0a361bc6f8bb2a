"""Good-images-only anomaly detection (PatchCore-style) that exports to TFLite int8 and the Edge TPU.

Importing this package registers the custom Keras layers (``trainer.anomaly.layers``);
do it before ``keras.models.load_model`` on an anomaly run's ``model.keras``.
"""
from trainer.anomaly import layers  # noqa: F401  (registers the serialisable layers)
from trainer.anomaly.model import build_feature_extractor, build_scorer, scorer_params  # noqa: F401


def train_anomaly(cfg, echo=None, mode_choice=None):
    """Fit on ``train/good`` only; returns the run folder (see trainer/anomaly/fit.py).

    ``echo``: where progress lines go (default ``click.echo``).
    """
    from trainer.anomaly.fit import train_anomaly as _train
    from trainer.anomaly.settings import anomaly_settings

    cfg.anomaly = anomaly_settings(cfg.anomaly)  # config.json pins every setting, not only the ones given
    return _train(cfg, echo=echo, mode_choice=mode_choice)
