"""What every bench module shares: its error type and where progress lines go."""
from __future__ import annotations

from edge.errors import EdgeInspectError


class BenchError(EdgeInspectError):
    pass


def echo(progress, msg):
    """A progress line when ``progress`` is on (plain print where click is missing, e.g. a soak child)."""
    if progress:
        try:
            import click

            click.echo(msg)
        except ImportError:  # pragma: no cover
            print(msg, flush=True)
