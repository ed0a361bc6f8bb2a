"""Every backend x variant on the same test images and frames: does it agree with LiteRT, and what does a
camera frame cost beside the bare ``invoke()``.

Per TFLite variant (Edge TPU files excepted: only the delegate runs them) and per installed backend
that reads the file (``edge.backend.fastest_candidates``: LiteRT, OpenVINO, tflite-runtime):

* verdict agreement and max |score difference| against LiteRT on every test image;
* medians of the bare ``invoke()`` and of ``EdgeModel.predict_array`` on a frame at the model's size,
  640x480 and 1920x1080 (the test image stretched up, so the resize is real work), and of the same
  1920x1080 frame as JPEG bytes (decoded as ``watch`` decodes MJPG, then predicted), all interleaved
  round by round so that load on a shared machine hits each alike; e2e is reported as a ratio to
  the invoke of the same run.
A backend that cannot read a variant gets a row saying why instead of numbers.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

FRAMES = ((640, 480), (1920, 1080))  # (w, h) beside the model-size frame
JPEG_FRAMES = ((1920, 1080),)  # also as the JPEG an MJPG camera sends: e2e includes the decode
JPEG_QUALITY = 90
REFERENCE = "litert"


class BgrFrame:
    """A frame as OpenCV's ``VideoCapture`` hands it to ``watch``: BGR, predicted with ``bgr=True``."""

    def __init__(self, rgb):
        self.array = np.ascontiguousarray(rgb[..., ::-1])


def frames_for(image, input_size, sizes=FRAMES, jpeg_sizes=JPEG_FRAMES, bgr_sizes=()):
    """The model-size frame plus ``sizes`` as RGB arrays, ``jpeg_sizes`` as JPEG bytes ("WxH jpeg") and
    ``bgr_sizes`` as OpenCV BGR frames ("WxH bgr"), all made from one decoded test image."""
    import io

    from PIL import Image

    h, w = input_size
    src = Image.fromarray(image)
    out = {f"{w}x{h}": np.ascontiguousarray(np.asarray(src.resize((w, h), Image.BICUBIC)))}
    for fw, fh in sizes:
        out[f"{fw}x{fh}"] = np.ascontiguousarray(np.asarray(src.resize((fw, fh), Image.BICUBIC)))
    for fw, fh in jpeg_sizes:
        buf = io.BytesIO()
        src.resize((fw, fh), Image.BICUBIC).save(buf, format="JPEG", quality=JPEG_QUALITY)
        out[f"{fw}x{fh} jpeg"] = buf.getvalue()
    for fw, fh in bgr_sizes:
        out[f"{fw}x{fh} bgr"] = BgrFrame(np.asarray(src.resize((fw, fh), Image.BICUBIC)))
    return out


def _predict_frame(model, frame):
    """A frame as a camera hands it over: RGB pixels, or JPEG bytes decoded as ``watch`` decodes MJPG."""
    if isinstance(frame, bytes):
        from edge.imageio import decode_jpeg

        frame = decode_jpeg(frame, model.input_size)
    elif isinstance(frame, BgrFrame):
        return model.predict_array(frame.array, bgr=True)
    return model.predict_array(frame)


def time_e2e(model, frames, repeats, warmup=3):
    """Interleaved medians: {"invoke_ms", "e2e_ms": {frame: ms}, "ratio": {frame: e2e / invoke}}."""
    small = next(iter(frames.values()))
    x = model.prepare(small)
    for _ in range(warmup):
        model.invoke_raw(x)
        for f in frames.values():
            _predict_frame(model, f)
    inv, e2e = [], {k: [] for k in frames}
    pc = time.perf_counter
    for i in range(repeats):
        order = list(frames.items())
        if i % 2:
            order.reverse()  # whichever follows the big resize runs on colder caches: alternate
        model.invoke_raw(x)
        t = pc()
        model._it.invoke()
        inv.append((pc() - t) * 1e3)
        for k, f in order:
            t = pc()
            _predict_frame(model, f)
            e2e[k].append((pc() - t) * 1e3)
    med = statistics.median
    invoke_ms = med(inv)
    return {"invoke_ms": round(invoke_ms, 3), "e2e_ms": {k: round(med(v), 3) for k, v in e2e.items()},
            "ratio": {k: round(med(v) / invoke_ms, 3) for k, v in e2e.items()}}


def time_e2e_warm(model, frames, calls=40, rounds=5):
    """Consecutive calls on one frame (the frame in cache, as a loop predicting the frame it just
    decoded, and as issue 18 measured): per frame, blocks of ``calls`` bare invokes and ``calls``
    predictions, in alternating order, ``rounds`` times; medians and ratios as :func:`time_e2e`."""
    small = next(iter(frames.values()))
    x = model.prepare(small)
    inv, e2e = [], {k: [] for k in frames}
    pc = time.perf_counter

    def bare():
        model.invoke_raw(x)
        for _ in range(calls):
            t = pc()
            model._it.invoke()
            inv.append((pc() - t) * 1e3)

    for r in range(rounds):
        for k, f in frames.items():
            for _ in range(3):
                _predict_frame(model, f)

            def pred():
                for _ in range(calls):
                    t = pc()
                    _predict_frame(model, f)
                    e2e[k].append((pc() - t) * 1e3)

            for step in ((bare, pred) if r % 2 == 0 else (pred, bare)):
                step()
    med = statistics.median
    invoke_ms = med(inv)
    return {"method": f"{rounds} rounds x {calls} consecutive calls per frame", "invoke_ms": round(invoke_ms, 3),
            "e2e_ms": {k: round(med(v), 3) for k, v in e2e.items()},
            "ratio": {k: round(med(v) / invoke_ms, 3) for k, v in e2e.items()}}


def backend_rows(found, ts, threads, repeats=30, progress=None):
    """[{variant, backend, ...}] for every TFLite variant in ``found`` ([(name, path)]) x backend."""
    import warnings

    from edge.backend import fastest_candidates
    from edge.errors import EdgeInspectError
    from edge.runtime import EdgeModel
    from export.variants import VARIANT

    say = progress or (lambda *_: None)
    backends = [b for b in fastest_candidates() if b == REFERENCE] + \
        [b for b in fastest_candidates() if b != REFERENCE]
    frames = frames_for(ts.images[0], ts.size)
    rows = []
    for v, path in found:
        if VARIANT[v].source != "convert":
            continue
        ref = None
        for b in backends:
            row = {"variant": v, "backend": b}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m = EdgeModel(str(path), backend=b, threads=threads)
            except EdgeInspectError as exc:
                row["error"] = str(exc).splitlines()[0][:300]
                rows.append(row)
                say(f"    {v} on {b}: cannot run ({row['error'][:120]})")
                continue
            preds = [m.predict_array(img) for img in ts.images]
            scores = np.array([p.score for p in preds], np.float64)
            verdicts = np.array([p.verdict == "defective" for p in preds])
            if b == REFERENCE:
                ref = (scores, verdicts)
            row.update(backend_version=m.loaded.backend_version, **time_e2e(m, frames, repeats))
            if ref is not None and b != REFERENCE:
                row["agreement_vs_litert"] = round(float(np.mean(ref[1] == verdicts)), 4)
                row["max_score_diff_vs_litert"] = round(float(np.max(np.abs(ref[0] - scores))), 6)
            rows.append(row)
            say(f"    {v} on {b}: invoke {row['invoke_ms']:.2f} ms, e2e "
                + ", ".join(f"{k} {r:.2f}x" for k, r in row["ratio"].items()))
    return rows


def format_backends(rows) -> list:
    """Text lines of the backend table (bench's table.txt and the terminal)."""
    if not rows:
        return []
    keys = next((list(r["ratio"]) for r in rows if "ratio" in r), [])
    wid = {k: max(14, len(k) + 4) for k in keys}
    head = f"{'variant':<8} {'backend':<14} {'invoke ms':>9} " + " ".join(f"{'e2e ' + k:>{wid[k]}}" for k in keys) + \
        f" {'agree':>6} {'max |ds|':>9}"
    out = ["", "backends (e2e = predict_array on a frame, x the bare invoke of the same run; agreement vs LiteRT)", head]
    fastest = {}
    for r in rows:
        if "error" in r:
            out.append(f"{r['variant']:<8} {r['backend']:<14} cannot run: {r['error'][:90]}")
            continue
        if r["invoke_ms"] < fastest.get(r["variant"], (None, float("inf")))[1]:
            fastest[r["variant"]] = (r["backend"], r["invoke_ms"])
        cells = " ".join(f"{r['e2e_ms'][k]:>7.2f} ({r['ratio'][k]:.2f}x)".rjust(wid[k]) for k in keys)
        agree = r.get("agreement_vs_litert")
        diff = r.get("max_score_diff_vs_litert")
        out.append(f"{r['variant']:<8} {r['backend']:<14} {r['invoke_ms']:>9.2f} {cells} "
                   f"{'-' if agree is None else f'{agree:.3f}':>6} {'-' if diff is None else f'{diff:.4f}':>9}")
    out.append("fastest invoke: " + ", ".join(f"{v} {b} ({ms:.2f} ms)" for v, (b, ms) in fastest.items()))
    return out
