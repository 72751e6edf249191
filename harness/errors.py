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


class Diverged(RuntimeError):
    """Training produced a non-finite or exploding loss; recorded as status ``diverged``."""
