"""The bench modules' shared error type (progress goes through edge.progress like every stage's)."""
from __future__ import annotations

from edge.errors import EdgeInspectError


class BenchError(EdgeInspectError):
    pass

