"""``edgeinspect bench RUN_DIR``: every variant of a run, accuracy and latency side by side."""
from __future__ import annotations

import click

from benchmarks.bench import N_BOOT, REPEATS, WARMUP
from benchmarks.compare import AUROC_DROP, LATENCY_RATIO
from edge.cli import EXIT_REGRESSION
from export.variants import BENCHED


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default RUN_DIR/bench).")
@click.option("--variants", default=None,
              help=f"Comma-separated subset of {','.join(BENCHED)} (default: all that exist).")
@click.option("--repeats", default=REPEATS, show_default=True, help="Timed calls per variant (after warm-up).")
@click.option("--warmup", default=WARMUP, show_default=True, help="Untimed warm-up calls per variant.")
@click.option("--keras-repeats", default=None, type=int, help="Timed model.predict calls (default repeats/3, >= 10).")
@click.option("--threads", default=None, type=int, help="Interpreter threads (default: all cores).")
@click.option("--n-boot", default=N_BOOT, show_default=True, help="Bootstrap resamples for the 95% intervals.")
@click.option("--no-litert-benchmark", is_flag=True, help="Skip the litert-benchmark reference timing.")
@click.option("--no-cold", is_flag=True, help="Skip the cold-start/peak-RSS child process per variant.")
@click.option("--backend", type=click.Choice(["auto", "litert", "tflite-runtime", "tensorflow", "openvino", "fastest"]),
              default=None, help="Interpreter for the main table (default: auto); the backend table runs them all.")
@click.option("--no-backends", is_flag=True,
              help="Skip the backend x variant table (OpenVINO beside LiteRT, e2e on 640x480/1920x1080 frames).")
@click.option("--limit", default=None, type=int, help="Use only the first N test images (smoke tests).")
@click.option("--compare", "compare_to", type=click.Path(dir_okay=False), default=None,
              help=f"Reference bench JSON (e.g. benchmarks/results/*.json): flag an AUROC drop > {AUROC_DROP} or a "
                   f"latency ratio within the run (predict / bare invoke(), int8 / float32, fastest calls) > "
                   f"{LATENCY_RATIO}x the reference's; absolute ms are compared only when the machine matches.")
@click.option("--fail-on-regression", is_flag=True,
              help=f"Exit {EXIT_REGRESSION} when --compare finds a regression (0 ok, 2 bad input).")
def bench(run_dir, out_dir, variants, repeats, warmup, keras_repeats, threads, n_boot, no_litert_benchmark, no_cold,
          limit, compare_to, fail_on_regression, no_backends, backend):
    """Benchmark every exported variant of RUN_DIR on its own test split.

    \b
    Keras float, TFLite float32/float16/dynamic-range/int8 and (with a device) Edge TPU,
    in one process on the same images: AUROC and balanced accuracy with 95% intervals,
    accuracy beside the majority baseline, confusion matrix, per-type recall, agreement
    with the float model; latency p50/p95/p99, bare invoke() and litert-benchmark
    references, cold start, peak RSS, size. Writes bench.json, bench.csv, PNGs and a
    self-contained report.html to RUN_DIR/bench/.
    """
    from benchmarks.bench import run_bench
    from benchmarks.tables import format_table

    chosen = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    result = run_bench(run_dir, out_dir=out_dir, variants=chosen, repeats=repeats, warmup=warmup, n_boot=n_boot,
                       litert_benchmark=not no_litert_benchmark, progress=True, threads=threads, cold=not no_cold,
                       keras_repeats=keras_repeats, limit=limit, compare_to=compare_to, backends=not no_backends,
                       backend=backend)
    click.echo("")
    click.echo(format_table(result))
    click.echo(f"\nreport: {result['outputs']['html']}")
    comp = result.get("comparison")
    if fail_on_regression and comp and comp["regressions"]:
        raise SystemExit(EXIT_REGRESSION)
