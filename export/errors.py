"""Export errors: one line, naming the file and the fix (the CLI prints them with exit code 2)."""
from edge.errors import EdgeInspectError


class ExportError(EdgeInspectError):
    pass


class CompilerMissing(ExportError):
    """edgetpu_compiler is not on PATH (or cannot run on this machine)."""
