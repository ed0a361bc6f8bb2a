"""Many images through one model: decode ahead on threads while the interpreter runs."""
from __future__ import annotations

import os
import time

from edge.errors import ImageError


def iter_predict(model, paths, workers=1, top_k=5):
    """Yield ``(path, Prediction | ImageError)`` in order; decodes up to ``workers`` images ahead
    on threads while the interpreter runs (Pillow releases the GIL while decoding)."""
    paths = list(paths)
    if workers <= 0 or len(paths) <= 1:
        for p in paths:
            try:
                yield p, model.predict(p, top_k=top_k)
            except ImageError as exc:
                yield p, exc
        return
    from concurrent.futures import ThreadPoolExecutor

    def decode(p):
        t = time.perf_counter()
        try:
            return model.pixels(p), (time.perf_counter() - t) * 1e3
        except ImageError as exc:
            return exc, 0.0

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending = [pool.submit(decode, p) for p in paths[: workers + 1]]
        nxt = len(pending)
        for p in paths:
            px, ms = pending.pop(0).result()
            if nxt < len(paths):
                pending.append(pool.submit(decode, paths[nxt]))
                nxt += 1
            if isinstance(px, ImageError):
                yield p, px
            else:
                yield p, model.predict_pixels(px, os.fspath(p), top_k, ms)
