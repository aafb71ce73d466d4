"""Exceptions raised for bad user input (files, settings)."""

from __future__ import annotations

from pathlib import Path


class HDNNPError(Exception):
    """Base class of all hdnnp errors meant for the user (no traceback needed)."""


class ReadError(HDNNPError):
    """A file could not be read; the message names file, line and what was expected."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path  # 0: no line (generated settings)
        super().__init__(f"{where}: {message}")


class SettingsError(HDNNPError):
    """Inconsistent settings (e.g. an element in the data that the potential lacks)."""


class Interrupted(HDNNPError):
    """A run ended early by SIGINT/SIGTERM after saving its state (exit code 130, as a shell's Ctrl-C)."""

    exit_code = 130
