"""``edgeinspect train``: a config file (or the defaults) plus command-line overrides."""
from __future__ import annotations

import os

import click

from edge.errors import EdgeInspectError


def _abspath(p):
    return os.path.abspath(p) if p else p


@click.command("train")
@click.option("--data", type=click.Path(file_okay=False), help="Dataset root in MVTec AD layout (train/good, test/<type>).")
@click.option("--manifest", type=click.Path(dir_okay=False), help="Split manifest from 'edgeinspect data split' (default: split now).")
@click.option("--mode", type=click.Choice(["auto", "classifier", "anomaly", "combined"]),
              help="auto (default: picks by the split's defects, says why), anomaly (good images only), combined "
                   "(good images + a few defects, one graph) or classifier (fine-tuned MobileNetV2).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="JSON config, e.g. a run's config.json to reproduce it; options below override it.")
@click.option("--epochs", type=int, help="Phase 1 (heads on the frozen backbone) max epochs.")
@click.option("--fine-tune-epochs", type=int, help="Phase 2 max epochs (0 = no fine-tuning).")
@click.option("--fine-tune-blocks", type=int, help="Top inverted-residual blocks unfrozen in phase 2 (BatchNorm stays frozen).")
@click.option("--fine-tune-learning-rate", type=float)
@click.option("--learning-rate", type=float, help="Phase 1 learning rate.")
@click.option("--aug-copies", type=int, help="Augmented copies of each train image in the feature cache.")
@click.option("--no-augment", is_flag=True, default=False, help="Train on the original images only.")
@click.option("--patience", type=int, help="Early-stopping patience (epochs without a better val loss).")
@click.option("--alpha", type=float, help="MobileNetV2 width (ImageNet file offline: 1.0 only).")
@click.option("--input-size", type=int, help="Model input size in pixels (square).")
@click.option("--weights", help="imagenet | none | PATH to a MobileNetV2 .h5 weights file.")
@click.option("--dropout", type=float)
@click.option("--batch-size", type=int)
@click.option("--threshold-policy", help="max-f1 | recall@R | fpr@F (default recall@0.99: catch defects first).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu", "tpu"]))
@click.option("--tpu", help="TPU address (grpc://... or a Cloud TPU name); implies --device tpu.")
@click.option("--protocol", type=click.Choice(["supervised", "good-only", "kfold"]), help="Split protocol when no --manifest.")
@click.option("--defects-per-type", type=int, help="Defective images per type moved into train (supervised).")
@click.option("--defects-total", type=int, help="Defective images in total moved into train, round-robin over types.")
@click.option("--val-fraction", type=float)
@click.option("--seed", type=int)
@click.option("--project", help="Parent folder of run folders (default runs/train).")
@click.option("--name", help="Run folder name; numbered exp, exp2, ... when taken.")
@click.option("--roi", type=click.Path(dir_okay=False),
              help="Mask image (any size): white = inspect, black = ignore; baked into the model and every export.")
@click.option("--save-maps", is_flag=True, default=False,
              help="Anomaly mode: write heat-map overlays of test images to RUN/maps/ (= --set anomaly.save_maps=true).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Any config field, applied last (repeatable): --set k=3, --set augment.flip=false, "
                   "--set anomaly.bank_size=1024. Values are JSON or Python literals.")
@click.option("--print-config", is_flag=True, help="Print the resolved config (what config.json will hold) and exit.")
@click.option("--update", "update", type=click.Path(file_okay=False), metavar="RUN",
              help="Re-teach RUN from field images (--add-good/--add-defects) into a new numbered run beside it.")
@click.option("--add-good", type=click.Path(file_okay=False), metavar="DIR",
              help="With --update: confirmed good images (a watch --rejects folder or its confirmed_good/).")
@click.option("--add-defects", type=click.Path(file_okay=False), metavar="DIR",
              help="With --update: confirmed defects, one sub-folder per type (or a watch --rejects folder).")
def train(data, manifest, mode, config_path, no_augment, save_maps, sets, print_config, update, add_good,
          add_defects, **overrides):
    """Train a MobileNetV2 defect classifier (or an anomaly model) and save a run folder.

    \b
    Examples:
      edgeinspect train --data data/hazelnut --defects-per-type 10
      edgeinspect train --data data/hazelnut --mode anomaly
      edgeinspect train --config runs/train/exp/config.json      (re-run it)
      edgeinspect train --mode anomaly --set anomaly.bank_size=1024 --print-config
    """
    import json

    if update or add_good or add_defects:
        given = [f"--{k.replace('_', '-')}" for k, v in dict(data=data, manifest=manifest, mode=mode,
                                                           config=config_path, **overrides).items()
                 if v is not None and k != "seed"] + (["--set"] if sets else [])
        if not update:
            raise EdgeInspectError("--add-good/--add-defects teach an existing run: add --update RUN")
        if given:
            raise EdgeInspectError(f"--update takes its data and settings from {update}/config.json; "
                                   f"drop {', '.join(given)}")
        from trainer.update import update_run

        run_dir = update_run(update, add_good, add_defects, echo=click.echo, seed=overrides.get("seed"))
        click.echo(f"next: edgeinspect export {run_dir}")
        return
    from trainer.anomaly.settings import DEFAULTS as ANOMALY_DEFAULTS
    from trainer.config import apply_sets, load_config, no_augment as augment_off

    overrides.update(data=data, manifest=manifest, mode=mode)
    if no_augment:
        overrides["aug_copies"] = 0
        overrides["augment"] = augment_off()
    sets = (["anomaly.save_maps=true"] if save_maps else []) + list(sets)
    cfg = apply_sets(load_config(config_path, **overrides), sets, nested={"anomaly": list(ANOMALY_DEFAULTS)})
    # Paths absolute, whether given as options or with --set: config.json must re-run from any folder.
    cfg.data, cfg.manifest, cfg.roi = _abspath(cfg.data), _abspath(cfg.manifest), _abspath(cfg.roi)
    if cfg.weights and cfg.weights.lower() != "imagenet":
        cfg.weights = _abspath(cfg.weights)
    cfg = resolved(cfg)
    if print_config:
        click.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    if cfg.data and not os.path.isdir(cfg.data):
        raise EdgeInspectError(f"{cfg.data}: data folder not found; pass --data ROOT (MVTec AD layout: train/good, test/<type>)")
    run_dir = dispatch(cfg)
    click.echo(f"next: edgeinspect export {run_dir}")


def resolved(cfg):
    """``cfg`` with its mode's settings filled in, so config.json pins every value (a changed default
    cannot change what a re-run does)."""
    if cfg.mode in ("anomaly", "combined", "auto"):
        from trainer.anomaly.settings import anomaly_settings

        cfg.anomaly = anomaly_settings(cfg.anomaly)
    return cfg


def dispatch(cfg):
    """Run the trainer for ``cfg.mode``; returns the run folder."""
    choice = None
    if cfg.mode == "auto":
        cfg, choice = _auto(cfg)
    if cfg.mode == "combined":
        from trainer.anomaly.fit_combined import train_combined

        return train_combined(resolved(cfg), echo=click.echo, mode_choice=choice)
    if cfg.mode == "anomaly":
        try:
            from trainer.anomaly import train_anomaly
        except ImportError as exc:
            raise EdgeInspectError(
                f"--mode anomaly is not available in this install ({exc}); use --mode classifier") from None
        return train_anomaly(resolved(cfg), mode_choice=choice)
    from trainer.train import train_classifier

    return train_classifier(cfg)


def _auto(cfg):
    """(cfg with the chosen mode, {"mode", "why"}): the split decides (trainer/mode_choice.py)."""
    from trainer.data.run_contract import split_items
    from trainer.data.split import split_for_config
    from trainer.mode_choice import choose_mode

    from edge.errors import DataError

    try:
        manifest, root, _ = split_for_config(cfg, lambda *_: None)
    except DataError:
        if cfg.manifest:
            raise
        # no defect to move into train (e.g. only test/good): what is left is good images only
        manifest, root, _ = split_for_config(cfg, lambda *_: None, protocol="good-only")
    mode, why = choose_mode({s: split_items(manifest, s, root) for s in ("train", "val")})
    click.echo(f"mode auto -> {mode}: {why}")
    cfg.mode = mode
    return cfg, {"mode": mode, "why": why, "requested": "auto"}
