"""``edgeinspect export RUN_DIR``: TFLite variants + parity report (exit 2 when a variant fails parity)."""
from __future__ import annotations

from pathlib import Path

import click

from export import variants as V
from export.calibration import DEFAULT_CALIB_SIZE
from export.errors import ExportError
from export.parity import MAX_AUROC_DROP, MIN_AGREEMENT, MIN_TYPE_AGREEMENT


def variant_flags(command):
    """One ``--<variant>`` flag per exported row of export/variants.py, in the table's order."""
    for name in reversed(V.EXPORTED):
        row = V.get(name)
        command = click.option(row.flag, "variants", flag_value=name, multiple=True, help=row.help)(command)
    return command


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@variant_flags
@click.option("--all", "all_", is_flag=True,
              help=f"{', '.join(V.CONVERTED)}, and edgetpu when the compiler is installed (the default).")
@click.option("--variant", "extra", multiple=True, metavar="NAME", help="Variant by name (repeatable).")
@click.option("--calib-size", default=DEFAULT_CALIB_SIZE, show_default=True, type=click.IntRange(min=1),
              help="Training images used to calibrate int8 (all if fewer), stratified by defect type.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the calibration draw.")
@click.option("--skip-bad", is_flag=True, help="Skip unreadable images (with a warning each) instead of stopping.")
@click.option("--allow-cpu-ops", is_flag=True, help="Accept an Edge TPU model with ops that fall back to the CPU.")
@click.option("--min-agreement", default=MIN_AGREEMENT, show_default=True, type=float,
              help="A variant agreeing with Keras less than this is FAILED.")
@click.option("--min-type-agreement", default=MIN_TYPE_AGREEMENT, show_default=True, type=float,
              help="Models with a type head (classifier, anomaly with types): a variant whose defect type "
                   "differs from Keras's more often (among parts Keras "
                   "calls defective) is FAILED.")
@click.option("--max-auroc-drop", default=MAX_AUROC_DROP, show_default=True, type=float,
              help="A variant losing more AUROC than this is FAILED.")
@click.option("--no-fail", is_flag=True, help="Report FAILED variants but exit 0 and keep their usual file names.")
@click.option("--accept-changes", is_flag=True,
              help="Updated run (train --update): accept golden verdicts of the parent that flipped (exit 0).")
@click.option("-q", "--quiet", is_flag=True, help="Only the table.")
def export(run_dir, variants, all_, extra, calib_size, seed, skip_bad, allow_cpu_ops, min_agreement,
           min_type_agreement, max_auroc_drop, no_fail, accept_changes, quiet):
    """Export RUN_DIR (a trained run) to TFLite variants under RUN_DIR/export/, with a parity check of each."""
    from export.convert import export_run, parse_variants
    from export.parity import format_table

    names = list(variants) + list(extra)
    parse_variants(names)  # unknown names -> one-line error before anything is loaded
    if all_ or not names:
        # Edge TPU only when its compiler is installed; asked for by name, a missing compiler is an error.
        chosen = list(V.CONVERTED)
        edgetpu = True if "edgetpu" in names else "auto"
    else:
        chosen = parse_variants(names)
        edgetpu = "edgetpu" in chosen
        chosen = [v for v in chosen if V.get(v).source == "convert"]
    if not set(chosen) <= set(V.EXPORTED):
        raise ExportError(f"unknown variant(s) {sorted(set(chosen) - set(V.EXPORTED))}; choose from {', '.join(V.EXPORTED)}")
    report = export_run(run_dir, variants=chosen, calib_size=calib_size, seed=seed, edgetpu=edgetpu,
                        allow_cpu_ops=allow_cpu_ops, min_agreement=min_agreement, max_auroc_drop=max_auroc_drop,
                        min_type_agreement=min_type_agreement, progress=not quiet, no_fail=no_fail, skip_bad=skip_bad,
                        accept_changes=accept_changes)
    if quiet:
        click.echo(format_table(report))
    reg = report.get("regression") or {}
    if reg.get("status") == "GOLDEN_FLIP":
        names = ", ".join("/".join(Path(f).parts[-2:]) for f in reg["golden_flipped"][:8])
        more = f" and {len(reg['golden_flipped']) - 8} more" if len(reg["golden_flipped"]) > 8 else ""
        msg = (f"{len(reg['golden_flipped'])} golden verdict(s) of {reg['parent_name']} flipped: {names}{more}")
        if accept_changes:
            click.echo(f"warning: {msg} (--accept-changes: exit 0)", err=True)
        else:
            from edge.cli import UserError

            raise UserError(f"{msg}; the files are written, see export_report.json 'regression' "
                            "(--accept-changes to accept them)")
    if report["status"] == "FAILED":
        failed = [f"{n} ({'; '.join(v.get('parity', {}).get('reasons', []) or [v.get('error', '')])})"
                  for n, v in report["variants"].items() if v["status"] == "FAILED"]
        msg = f"parity FAILED: {', '.join(failed)}"
        if no_fail:
            click.echo(f"warning: {msg} (--no-fail: exit 0)", err=True)
        else:
            from edge.cli import UserError

            raise UserError(f"{msg}; failed files were kept aside as model_<variant>.failed.tflite "
                            "(see export_report.json; --no-fail to accept)")
