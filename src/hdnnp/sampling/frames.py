"""Frame bookkeeping of ``hdnnp sample``: comment lines, per-trajectory counts of an existing output
(for resuming) and the repair of a partly written last frame."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from hdnnp.errors import ReadError
from hdnnp.io.n2p2_data import iter_input_data
from hdnnp.structure import Structure

log = logging.getLogger("hdnnp.sampling")

#: first word of the comment line written with every frame
COMMENT_TAG = "hdnnp-sample"


def split_frames(frames: int, n_temperatures: int) -> list[int]:
    """Split a frame budget over temperatures as evenly as possible (earlier ones get the rest)."""
    base, rest = divmod(frames, n_temperatures)
    return [base + (1 if k < rest else 0) for k in range(n_temperatures)]


def _t_key(temperature_K: float) -> str:
    return f"{float(temperature_K):g}"


def _key(temperature_K: float, seed) -> tuple[str, str]:
    """A trajectory: (temperature as written in the comments, seed)."""
    return _t_key(temperature_K), str(seed)


def format_comment(**fields) -> str:
    """The ``comment`` text of one frame: ``hdnnp-sample key=value ...``."""
    return " ".join([COMMENT_TAG] + [f"{k}={v}" for k, v in fields.items()])


def parse_comment(comment: str) -> dict[str, str] | None:
    """``key=value`` fields of an ``hdnnp-sample`` comment, or None for other comments."""
    words = comment.split()
    if not words or words[0] != COMMENT_TAG:
        return None
    out = {}
    for w in words[1:]:
        k, sep, v = w.partition("=")
        if sep:
            out[k] = v
    return out


@dataclass
class ExistingFrames:
    """What an output file already holds (for resuming).

    counts : MD frames per trajectory key (``(f"{T:g}", seed)``, see ``_key``).
    last : the last MD frame (Structure) and its fields per trajectory key.
    calculators : calculator labels seen; seeds : seeds seen; other : frames without our comment.
    """

    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    last: dict[tuple[str, str], tuple[Structure, dict[str, str]]] = field(default_factory=dict)
    calculators: set[str] = field(default_factory=set)
    seeds: set[str] = field(default_factory=set)
    n_frames: int = 0
    other: int = 0


def _repair_tail(path: Path) -> None:
    """Cut a partly written last frame (a kill during a write) and ensure a final newline.

    Only a trailing block that starts with ``begin`` and has no ``end`` is removed;
    anything else is left for the reader to report.
    """
    data = path.read_bytes()
    pos = last_end = 0
    tail_first_word = None
    for line in data.splitlines(keepends=True):
        pos += len(line)
        words = line.split()
        if not words:
            continue
        if words[0] == b"end":
            last_end = pos
            tail_first_word = None
        elif tail_first_word is None:
            tail_first_word = words[0]
    if last_end < len(data) and data[last_end:].strip() and tail_first_word == b"begin":
        _check_own_partial_frame(path, data, last_end)
        log.warning("%s: removing a partly written last frame (%d bytes after the last 'end')",
                    path, len(data) - last_end)
        os.truncate(path, last_end)
        data = data[:last_end]
    if data and not data.endswith(b"\n"):
        with open(path, "ab") as fh:
            fh.write(b"\n")


def _check_own_partial_frame(path: Path, data: bytes, last_end: int) -> None:
    """A trailing block without ``end`` is cut only when ``hdnnp sample`` wrote it (its comment
    line, or no complete line after ``begin``); a user's own last frame is reported instead."""
    tail = data[last_end:]
    complete = tail.split(b"\n")[:-1]  # lines that end with a newline
    words = [ln.split() for ln in complete if ln.strip()]
    ours = len(words) <= 1 or (words[1][:2] == [b"comment", COMMENT_TAG.encode()])
    if not ours:
        begin_line = data.count(b"\n", 0, last_end) + 1 + next(
            k for k, ln in enumerate(tail.split(b"\n")) if ln.strip())
        raise ReadError(path, begin_line, "the last structure has no 'end' (truncated file?); it was not written "
                                          "by hdnnp sample, so it is not removed: add its 'end' line or delete it, "
                                          "then rerun")


def scan_existing(path: str | Path) -> ExistingFrames:
    """Count the frames already in ``path`` per trajectory (temperature and seed, from the comments)."""
    path = Path(path)
    ex = ExistingFrames()
    if not path.exists() or path.stat().st_size == 0:
        return ex
    _repair_tail(path)
    for s in iter_input_data(path, wrap=False):
        ex.n_frames += 1
        fields = None
        for c in s.comments:
            fields = parse_comment(c)
            if fields is not None:
                break
        if fields is None or "temperature_K" not in fields:
            ex.other += 1
            continue
        ex.calculators.add(fields.get("calculator", "?"))
        ex.seeds.add(fields.get("seed", "?"))
        if fields.get("kind", "md") != "md":
            continue
        try:
            key = _key(float(fields["temperature_K"]), fields.get("seed", "?"))
        except ValueError:
            ex.other += 1
            continue
        ex.counts[key] = ex.counts.get(key, 0) + 1
        ex.last[key] = (s, fields)
    return ex
