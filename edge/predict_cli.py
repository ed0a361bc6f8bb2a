"""``edgeinspect predict MODEL PATH...``: inspect images with a .tflite model, no TensorFlow.

Kept light on purpose: only click, numpy, Pillow and the interpreter are
imported, so one image answers in well under a second on a Pi.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import sys
import warnings

import click

from edge.cli import EXIT_DEFECTIVE, EXIT_ERROR, EXIT_OK, UserError

FIELDS = ("path", "verdict", "score", "defect_type", "type_prob", "latency_ms", "error")


def _fmt_path(p, width=48):
    # A file name with bytes that are not UTF-8 (surrogate escapes) is shown with U+FFFD, never a traceback.
    p = str(p).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return p if len(p) <= width else "…" + p[-(width - 1):]


def _row(rec):
    if rec["verdict"] is None:
        return f"{_fmt_path(rec['path']):<48}  {'ERROR':<9}  {rec['error']}"
    typ = ""
    if rec["defect_type"] is not None:
        label = rec["defect_type"] if len(rec["defect_type"]) <= 20 else rec["defect_type"][:19] + "…"
        # an anomaly model's type head gives a good part the type "good" without a probability
        typ = label if rec["type_prob"] is None else f"{label} ({rec['type_prob']:.2f})"
    return (f"{_fmt_path(rec['path']):<48}  {rec['verdict']:<9}  {rec['score']:>6.3f}  "
            f"{typ:<28}  {rec['latency_ms']:>7.1f}")


HEADER = f"{'path':<48}  {'verdict':<9}  {'score':>6}  {'type (prob)':<28}  {'ms':>7}"


def _map_name(path, out_dir, used):
    stem = os.path.splitext(os.path.basename(path))[0] or "image"
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    name = f"{stem}_map.png"
    if name in used:  # same file name in two folders (MVTec: test/crack/000.png, test/good/000.png)
        name = f"{parent}_{stem}_map.png"
    n = 2
    base = name
    while name in used:
        name = base.replace("_map.png", f"_{n}_map.png")
        n += 1
    used.add(name)
    return os.path.join(out_dir, name)


def _load_overlay():
    try:
        from edge.overlay import save_overlay
    except ImportError as exc:
        raise UserError(f"--save-maps needs edge.overlay, which failed to import ({exc}); "
                        "update edgeinspect or drop --save-maps")
    return save_overlay


def _write_csv(path, records):
    import csv
    import io

    from edge.atomic import atomic_write_bytes

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in FIELDS})
    # surrogateescape: a path with non-UTF-8 bytes is written back as those bytes, so it still opens.
    atomic_write_bytes(path, buf.getvalue().encode("utf-8", "surrogateescape"))


class _Stdout:
    """The table on stdout; when the reader goes away (``predict ... | head``) printing stops, the
    inspection and --json/--csv go on, and the exit code still means good/defective/error."""

    def __init__(self, quiet):
        self.quiet = quiet

    def __call__(self, msg):
        if self.quiet:
            return
        try:
            click.echo(msg)
        except BrokenPipeError:
            self.quiet = True
            try:  # later writes (and the flush at exit) go nowhere instead of raising again
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings (Pillow's about odd files, say) as one 'warning:' line each, like the errors around them,
    instead of Python's two-line file:line + source form."""
    def show(message, category, filename, lineno, file=None, line=None):
        click.echo("warning: " + " ".join(str(message).split()), err=True)

    saved, warnings.showwarning = warnings.showwarning, show
    try:
        yield
    finally:
        warnings.showwarning = saved


def _check_outputs(json_out, csv_out, save_maps):
    """Unwritable outputs fail now, in one line, not with a traceback after all the work."""
    from edge.atomic import check_writable

    for opt, target in (("--json", json_out), ("--csv", csv_out)):
        if target:
            try:
                check_writable(target)
            except OSError as exc:
                why = "Permission denied; check permissions" if isinstance(exc, PermissionError) else (exc.strerror or exc)
                raise UserError(f"{opt} {target}: cannot write there ({why}); pick a writable path")
    if save_maps:
        try:
            check_writable(os.path.join(save_maps, ".edgeinspect-check"))
        except OSError as exc:
            raise UserError(f"--save-maps {save_maps}: cannot write there ({exc.strerror or exc}); pick a writable folder")


def _inspect_all(m, files, workers, top_k, save_overlay, save_maps, records, used, show, err):
    from edge.errors import EdgeInspectError

    for path, res in m.iter_predict(files, workers=workers, top_k=top_k):
        if isinstance(res, EdgeInspectError):
            rec = {k: None for k in FIELDS}
            rec.update(path=os.fspath(path), error=str(getattr(res, "reason", res)))
            err(f"error: {res}")
        else:
            rec = res.to_dict()
            if save_overlay is not None and res.anomaly_map is not None:
                try:
                    from edge.imageio import load_image

                    map_path = _map_name(path, save_maps, used)
                    os.makedirs(save_maps, exist_ok=True)
                    save_overlay(load_image(path), res.anomaly_map, map_path, threshold=m.threshold,
                                 roi=(m.meta.get("roi") or {}).get("grid"))
                    rec["map"] = map_path
                except (EdgeInspectError, OSError, ValueError) as exc:
                    rec["error"] = f"heat map not saved: {exc}"
                    err(f"error: {path}: heat map not saved ({exc})")
        records.append(rec)
        show(_row(rec))


def _edgetpu_summary(path):
    """One line: what the Edge TPU compiler is predicted to map (or what it mapped) for this model."""
    from edge.edgetpu_preflight import preflight
    from edge.errors import EdgeInspectError

    try:
        return preflight(path)["summary"] + " (pre-flight: edgeinspect doctor MODEL)"
    except EdgeInspectError as exc:  # the interpreter loaded it, so this is the reader's limit, not the model's
        return f"Edge TPU: pre-flight not available ({exc})"


@click.command("predict", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("paths", nargs=-1, required=True)
@click.option("--threshold", type=float, default=None,
              help="Override the model's decision threshold (default: the one stored in the model).")
@click.option("--backend", type=click.Choice(["auto", "litert", "tflite-runtime", "tensorflow", "openvino", "fastest"]),
              default=None, help="Interpreter to use (default: $EDGEINSPECT_BACKEND or auto: litert > tflite-runtime "
              "> tensorflow); openvino: Intel CPUs; fastest: a short self-benchmark at load picks one (logged).")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="Interpreter threads (default: all cores).")
@click.option("--device", default=None,
              help="Edge TPU to use for _edgetpu.tflite models: usb, pci, usb:0, pci:1 (default: first found).")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Labels file (one per line) for a plain TFLite classifier without edgeinspect metadata; "
                   "its verdict is 'defective' if the top label is not 'good' when a 'good' label exists, else '-'.")
@click.option("--top-k", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Labels kept per image for plain classifiers (JSON 'top').")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None, help="Write results as JSON.")
@click.option("--csv", "csv_out", type=click.Path(dir_okay=False), default=None, help="Write results as CSV.")
@click.option("--save-maps", type=click.Path(file_okay=False), default=None,
              help="Folder for heat-map overlays (anomaly models).")
@click.option("--workers", type=click.IntRange(0, 16), default=1, show_default=True,
              help="Images decoded ahead on threads while the interpreter runs (0: decode inline).")
@click.option("-q", "--quiet", is_flag=True, help="No table or summary; errors still go to stderr.")
def predict(model, paths, threshold, backend, threads, device, labels, top_k, json_out, csv_out, save_maps,
            workers, quiet):
    """Inspect images with MODEL (.tflite) and print one verdict per image.

    PATH may be files, folders (searched recursively), globs ('parts/**/*.png')
    or '-' for a list of paths on stdin.

    \b
    Exit code: 0 every part good, 1 at least one part defective,
    2 any error (unreadable image, bad model, bad usage) -- errors win,
    so a script never mistakes a failed run for a clean one.
    """
    from edge.errors import EdgeInspectError
    from edge.inputs import expand_inputs

    err = lambda msg: click.echo(msg, err=True)  # noqa: E731
    _check_outputs(json_out, csv_out, save_maps)
    show = _Stdout(quiet or "-" in (json_out, csv_out))  # '--json -': stdout carries the JSON only
    files, problems = expand_inputs(paths)
    for arg, reason in problems:
        err(f"error: {arg}: {reason}")
    try:
        from edge.runtime import EdgeModel

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = EdgeModel(model, backend=backend, threads=threads, device=device, labels=labels,
                          threshold=threshold)
        for w in caught:
            err("warning: " + " ".join(str(w.message).split()))
    except EdgeInspectError as exc:
        raise UserError(str(exc)) from None
    save_overlay = None
    if save_maps:
        if m.task == "anomaly":
            save_overlay = _load_overlay()
        else:
            err(f"warning: --save-maps ignored: {m.task} models produce no anomaly map")
    show(f"model {m.path} ({m.task}, {m.input_size[0]}x{m.input_size[1]} {m.input_dtype.name}, "
         f"backend {m.backend}{', Edge TPU' if m.on_edgetpu else ''}, {m.threads} threads"
         + (f", threshold {m.threshold:g}" if m.task != "plain" else "") + ")")
    show(_edgetpu_summary(m.path))
    if m.backend_choice:
        err(m.backend_choice)
    if files:
        show(HEADER)
    records, used = [], set()
    with _one_line_warnings():
        _inspect_all(m, files, workers, top_k, save_overlay, save_maps, records, used, show, err)

    n_err = sum(1 for r in records if r["error"]) + len(problems)
    n_def = sum(1 for r in records if r["verdict"] == "defective")
    n_good = sum(1 for r in records if r["verdict"] == "good")
    lat = [r["latency_ms"] for r in records if r["latency_ms"] is not None]
    summary = {"images": len(records), "good": n_good, "defective": n_def, "errors": n_err,
               "median_ms": round(statistics.median(lat), 3) if lat else None}
    if not files:
        err("error: no images to inspect")
        n_err = max(n_err, 1)
    try:
        if json_out:
            from edge.atomic import atomic_write_json

            atomic_write_json(json_out, {"model": m.describe(), "summary": summary, "results": records,
                                         "problems": [{"path": a, "error": r} for a, r in problems]})
        if csv_out:
            _write_csv(csv_out, records + [{"path": a, "error": r} for a, r in problems])
    except OSError as exc:  # e.g. the disk filled up during the run
        raise UserError(f"{exc.filename or json_out or csv_out}: cannot write results ({exc.strerror or exc})")
    tail = f"; median {summary['median_ms']:.1f} ms" if lat else ""
    other = len(records) - n_good - n_def - sum(1 for r in records if r["error"] and not r["verdict"])
    show(f"{len(records)} images: {n_good} good, {n_def} defective"
         + (f", {other} unjudged" if other > 0 else "") + f", {n_err} errors{tail}")
    code = EXIT_ERROR if n_err else EXIT_DEFECTIVE if n_def else EXIT_OK
    click.get_current_context().exit(code)
