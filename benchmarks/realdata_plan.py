"""What benchmarks/realdata.py will run: the argument checks and every ``edgeinspect`` command line.

Kept apart from running them so the plan is testable without training anything: each set gets one
split per repeat (a seed, or a seed and a fold), and every mode is trained on that same split, so a
table row compares modes on identical images.
"""
from __future__ import annotations

from dataclasses import dataclass

import click

from trainer.data.split import K_FOLDS

MODES = ("anomaly", "combined", "classifier", "auto")
SUPERVISED_MODES = ("combined", "classifier")  # need labelled defects in train
EVIDENCE_MODES = ("anomaly", "combined", "auto")  # have the good-only evidence --ablation varies
PROTOCOLS = ("good-only", "supervised", "kfold")
EVIDENCE = ("patch+global", "patch", "global")
NO_EVIDENCE = "—"  # a classifier has no good-only evidence to vary


@dataclass(frozen=True)
class Repeat:
    """One split of a set: ``seed``, and ``fold`` for kfold (None otherwise)."""
    seed: int
    fold: int | None = None

    @property
    def tag(self):
        return f"seed{self.seed}" + (f"_fold{self.fold}" if self.fold is not None else "")


def parse_list(text, what, choices=None, cast=str):
    """``"a,b"`` -> ``["a", "b"]`` (order kept, repeats dropped); a clear error on an empty or unknown item."""
    items = [x.strip() for x in (text or "").split(",")]
    if not all(items):
        raise click.UsageError(f"{what} {text!r}: empty item; give a comma-separated list, e.g. {what} "
                               f"{','.join(choices[:2]) if choices else '0,1,2'}")
    out = []
    for x in items:
        if choices and x not in choices:
            raise click.UsageError(f"{what}: unknown {x!r}; choose from {', '.join(choices)}")
        try:
            v = cast(x)
        except ValueError:
            raise click.UsageError(f"{what}: {x!r} is not a whole number") from None
        if v not in out:
            out.append(v)
    return out


def check_args(protocol, modes, *, defects_total=None, defects_per_type=None, k=None, ablation=False):
    """Refuse combinations that would run something other than what was asked (never a silent skip)."""
    if protocol == "good-only":
        bad = [m for m in modes if m in SUPERVISED_MODES]
        if bad:
            raise click.UsageError(f"--modes {','.join(bad)} needs labelled defects in train, and --protocol "
                                   f"good-only has none; use --protocol supervised (or kfold), or --modes anomaly")
    if protocol != "supervised" and (defects_total is not None or defects_per_type is not None):
        raise click.UsageError(f"--defects-total/--defects-per-type choose the defects a supervised split moves "
                               f"into train; with --protocol {protocol} they would be ignored: drop them or use "
                               f"--protocol supervised")
    if defects_total is not None and defects_per_type is not None:
        raise click.UsageError("pass --defects-total or --defects-per-type, not both")
    if protocol != "kfold" and k is not None:
        raise click.UsageError(f"--k is the number of folds of --protocol kfold; with --protocol {protocol} it "
                               f"would be ignored: drop it or use --protocol kfold")
    if ablation and not any(m in EVIDENCE_MODES for m in modes):
        raise click.UsageError(f"--ablation varies the good-only evidence; --modes {','.join(modes)} has none: "
                               f"add anomaly, combined or auto")


def repeats(protocol, seeds, k=None):
    """The splits of one set: one per seed; kfold: every fold of every seed's fold assignment."""
    if protocol == "kfold":
        return [Repeat(s, f) for s in seeds for f in range(k or K_FOLDS)]
    return [Repeat(s) for s in seeds]


def split_args(root, protocol, repeat, out, *, defects_total=None, defects_per_type=None, k=None):
    args = ["data", "split", root, "--protocol", protocol, "--seed", repeat.seed]
    if defects_total is not None:
        args += ["--defects-total", defects_total]
    if defects_per_type is not None:
        args += ["--defects-per-type", defects_per_type]
    if protocol == "kfold":
        args += ["--k", k or K_FOLDS, "--fold", repeat.fold]
    return args + ["--out", out]


def train_args(root, manifest, mode, evidence, run, *, weights, train_options=()):
    """``train_options``: (flag, value) pairs passed on as given (e.g. ("--input-size", 32))."""
    args = ["train", "--data", root, "--manifest", manifest, "--mode", mode, "--weights", weights,
            "--project", run.parent, "--name", run.name]
    if mode in EVIDENCE_MODES:
        args += ["--set", f"anomaly.evidence={evidence}"]
    for flag, value in train_options:
        args += [flag, value]
    return args


def export_args(run):
    return ["export", run, "--int8", "--no-fail"]


def predict_args(model, images, json_out):
    return ["predict", model, *images, "--json", json_out]


def run_name(name, protocol, repeat, mode, evidence):
    """A run folder name unique per row (plain ASCII: no "+" or "—")."""
    tail = "" if evidence not in EVIDENCE else "_" + evidence.replace("+", "_")
    return f"{name}_{protocol}_{repeat.tag}_{mode}{tail}"


def evidences(mode, ablation):
    """The evidence settings a mode is run with; a mode without good-only evidence runs once ("—")."""
    if mode not in EVIDENCE_MODES:
        return (NO_EVIDENCE,)
    return EVIDENCE if ablation else EVIDENCE[:1]


def plan(data, names, protocol, modes, seeds, work, *, weights, k=None, defects_total=None, defects_per_type=None,
         ablation=False, train_options=()):
    """Every command of a benchmark, in order: per set and repeat one split, then each mode (and evidence)
    trained on that split's manifest. ``[{"set", "repeat", "manifest", "split", "runs": [{"mode",
    "evidence", "run", "train"}]}]`` with the argument lists ``_run`` takes."""
    steps = []
    for name in names:
        root = data / name
        for rep in repeats(protocol, seeds, k):
            manifest = work / f"{name}_{protocol}_{rep.tag}.json"
            runs = []
            for mode in modes:
                for evidence in evidences(mode, ablation):
                    run = work / "runs" / run_name(name, protocol, rep, mode, evidence)
                    runs.append({"mode": mode, "evidence": evidence, "run": run,
                                 "train": train_args(root, manifest, mode, evidence, run, weights=weights,
                                                     train_options=train_options)})
            steps.append({"set": name, "repeat": rep, "manifest": manifest, "runs": runs,
                          "split": split_args(root, protocol, rep, manifest, defects_total=defects_total,
                                              defects_per_type=defects_per_type, k=k)})
    return steps
