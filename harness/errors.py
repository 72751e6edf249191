"""Errors the CLI turns into clean messages (exit code 2, no traceback)."""

from __future__ import annotations


class HarnessError(Exception):
    """Bad input from the user: the CLI prints the message and exits with code 2."""


class ConfigError(HarnessError):
    """A problem in a YAML file, located as ``FILE:LINE: message``."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file, self.line, self.message = file, line, message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class DataError(HarnessError):
    """A data source that cannot be read as its dataset's layout: the message names the file and what to do;
    ``field`` is the ``data:`` key that points at it (e.g. ``("train_path",)``), so suite validation can
    report the line of that key."""

    def __init__(self, message: str, field: tuple[str, ...] = ("path",)):
        self.field = field
        super().__init__(message)


class Diverged(RuntimeError):
    """Training produced a non-finite or exploding loss; recorded as status ``diverged``."""
