"""The one ``edgeinspect`` command.

Subcommands live in the module of the stage that owns them and are imported
only when run, so ``edgeinspect --help``, ``predict`` and ``watch`` never pull
in TensorFlow (a Pi has none, and importing it costs seconds).
"""
from __future__ import annotations

import importlib

import click

from edge import __version__

# name -> (module:attribute, one-line help shown by `edgeinspect --help`)
COMMANDS = {
    "data": ("trainer.data.cli:data", "Synthesize, inspect and split datasets (MVTec AD layout)."),
    "train": ("trainer.cli:train", "Train a MobileNetV2 classifier or a good-images-only anomaly model."),
    "export": ("export.cli:export", "Export a trained run to float32/float16/int8/Edge TPU TFLite, with parity checks."),
    "predict": ("edge.predict_cli:predict", "Inspect images with a .tflite model (no TensorFlow)."),
    "watch": ("edge.watch.cli:watch", "Run the inspection service on a folder, video or camera."),
    "bench": ("benchmarks.cli:bench", "Compare accuracy and latency of every exported variant of a run."),
    "demo": ("benchmarks.demo:demo", "Offline end-to-end demo: synth data, train, export, benchmark, report."),
    "doctor": ("edge.doctor:doctor", "Report what is installed: interpreter, TensorFlow, Edge TPU, camera."),
}


# Exit codes shared by every command (predict/watch document them for shell scripts).
EXIT_OK = 0          # every part passed
EXIT_DEFECTIVE = 1   # at least one part was called defective
EXIT_ERROR = 2       # bad input, bad model, bad usage
EXIT_RESTART = 3     # watch stopped on a fault that may clear (result log unwritable: disk full); systemd restarts
EXIT_REGRESSION = 4  # bench --fail-on-regression: a variant regressed against the reference


class UserError(click.ClickException):
    """One line on stderr, no traceback, exit code 2."""

    exit_code = EXIT_ERROR


class LazyGroup(click.Group):
    def invoke(self, ctx):
        from edge.errors import EdgeInspectError

        try:
            return super().invoke(ctx)
        except EdgeInspectError as exc:
            raise UserError(str(exc)) from None

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            hint = "pip install 'edgeinspect[train]'" if name in ("train", "export", "bench", "demo", "data") else "pip install 'edgeinspect[edge]'"
            raise click.ClickException(f"'edgeinspect {name}' needs {missing}, which is not installed: {hint}")
        return getattr(module, attr)

    def format_commands(self, ctx, formatter):
        # Uses the static help so that `--help` imports nothing heavy.
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeinspect")
def main():
    """edgeinspect: visual inspection of industrial parts on edge devices.

    \b
    Workflow:
      edgeinspect data synth --kind hazelnut --out data/hazelnut
      edgeinspect data split data/hazelnut --protocol supervised --defects-per-type 10
      edgeinspect train --data data/hazelnut            (or --mode anomaly)
      edgeinspect export runs/train/exp --all
      edgeinspect predict runs/train/exp/export/model_int8.tflite part.png
      edgeinspect watch --model model_int8.tflite --source /srv/camera
    """


if __name__ == "__main__":  # pragma: no cover
    main()
