"""Where long stages report: one path for lines and for counted work (bars on a terminal, lines elsewhere).

Every long step (training epochs, calibration images, bias correction, bench variants, dataset
scans, synthesis) takes ``progress``: ``True`` (lines on stdout), a callable taking one line (tests
collect them; a caller's own ``echo``), or ``False``/``None`` (silent). :func:`as_progress` turns any
of these into a :class:`Progress`. ``Progress.bar(total, what)`` draws a tqdm bar with rate and ETA
when stderr is a terminal and tqdm is installed; otherwise (CI, systemd, a pipe, a test) it prints a
plain line about every tenth of the work and at the end, so logs stay short and greppable.

tqdm is optional: the device install does not need it, and without it bars become lines.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager


def _stdout_line(msg):
    try:
        import click

        click.echo(msg)
    except ImportError:  # pragma: no cover - click is an install requirement
        print(msg, flush=True)


class Progress:
    """Callable for a line (``progress("loaded")``); ``bar()`` for counted work."""

    def __init__(self, sink=None, tty=None):
        self._sink = sink
        self._tty = tty

    def __call__(self, msg):
        if self._sink is not None:
            self._sink(msg)

    def __bool__(self):
        return self._sink is not None

    def _use_bar(self):
        if self._sink is not _stdout_line:  # a caller collecting lines wants lines, never bars
            return False
        tty = sys.stderr.isatty() if self._tty is None else self._tty
        if not tty:
            return False
        try:
            import tqdm  # noqa: F401
        except ImportError:
            return False
        return True

    @contextmanager
    def bar(self, total, what, every=None, line=None):
        """``with progress.bar(n, "calibration images") as step: step(k, loss=0.1)`` advances by ``k``.

        Non-terminal: a line ``  what: done/total`` (or ``line(done, total, info)``) every ``every``
        steps (default a tenth) and at the end.
        """
        total = int(total)
        if not self or total <= 0:
            yield lambda n=1, **info: None
            return
        if self._use_bar():
            from tqdm import tqdm

            t0 = time.time()
            with tqdm(total=total, desc=f"  {what}", file=sys.stderr, leave=False, dynamic_ncols=True) as t:
                def step(n=1, **info):
                    t.update(n)
                    if info:
                        t.set_postfix({k: _short(v) for k, v in info.items()}, refresh=False)

                yield step
                done = t.n
            self(f"  {what}: {done}/{total} in {time.time() - t0:.1f}s")  # the bar is gone: keep one line
            return
        every = every or max(1, total // 10)
        state = {"done": 0, "said": 0}

        def step(n=1, **info):
            state["done"] = min(total, state["done"] + n)
            if state["done"] - state["said"] >= every or state["done"] == total:
                state["said"] = state["done"]
                if line is not None:
                    self(line(state["done"], total, info))
                else:
                    extra = "".join(f" {k} {_short(v)}" for k, v in info.items())
                    self(f"  {what}: {state['done']}/{total}{extra}")

        yield step


def _short(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def as_progress(progress=True) -> Progress:
    """``True`` -> lines on stdout (bars on a terminal); a callable -> its lines; ``False``/``None`` -> silent."""
    if isinstance(progress, Progress):
        return progress
    if callable(progress):
        return Progress(progress)
    return Progress(_stdout_line if progress else None)
