"""Errors that carry a one-line, user-facing message (file + what to do)."""


class EdgeInspectError(Exception):
    """Base class: the CLI prints ``str(exc)`` on one line, never a traceback."""


class ImageError(EdgeInspectError):
    def __init__(self, path, reason, fix=None):
        self.path = str(path)
        self.reason = reason
        self.fix = fix
        msg = f"{self.path}: {reason}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


class ModelError(EdgeInspectError):
    """A model file that is missing, not TFLite, or does not match its metadata."""


class DataError(EdgeInspectError):
    """A dataset or split that cannot be used (empty folder, missing class...)."""
