"""One exception tree: every error names the file and the record at fault."""

from __future__ import annotations

from pathlib import Path


class SegdataError(Exception):
    """Root of segdata's errors; ``str()`` reads ``path: record: message``.

    Parameters
    ----------
    message : str
        What was expected, what was found and, when known, the fix.
    path : str or Path, optional
        The file at fault.
    record : str, optional
        The record at fault, e.g. ``"annotation 17 (image 3)"`` or ``"line 4"``.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, record: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.record = record
        super().__init__(str(self))

    def __str__(self) -> str:
        return ": ".join(part for part in (self.path, self.record, self.message) if part)


class FormatError(SegdataError, ValueError):
    """A file cannot be read as the format it claims to be."""


class ReadError(SegdataError, OSError):
    """A file is missing or cannot be opened."""


class MaskError(SegdataError, ValueError):
    """A mask's geometry or encoding cannot be decoded.

    ``code`` is the stable finding code of the defect (``rle-counts-invalid``,
    ``polygon-box-ambiguous``, …), so that readers can flag the record.
    """

    def __init__(self, message: str, *, code: str, path=None, record=None):
        self.code = code
        super().__init__(message, path=path, record=record)


class OutputExistsError(SegdataError, FileExistsError):
    """The destination holds data and ``overwrite`` was not given."""


class UsageError(SegdataError, ValueError):
    """The arguments of a call do not fit together."""


class EvaluationError(SegdataError, ValueError):
    """Predictions cannot be evaluated against the ground truth (unknown image, size mismatch)."""
