"""Checks and safe writes shared by the readers and the commands.

* decoding text files so that non-UTF-8 bytes give ``file:line`` (``decode_text``,
  ``check_line_utf8``),
* finite numbers (``finite_float``) and structures without coinciding atoms
  (``check_structure_geometry``),
* atomic writes: a temporary file in the same directory renamed over the target, so a
  full disk or a kill never leaves a half-written output (``atomic_write_text``,
  ``atomic_write_bytes``, ``atomic_open``),
* output paths that must be directories (``check_output_dir``) and devices that must
  exist (``check_device``).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hdnnp.errors import HDNNPError, ReadError

#: atoms closer than this (in the file's length unit) are reported as coinciding
MIN_DISTANCE = 0.1


# ------------------------------------------------------------------ text decoding
def _bad_byte_message(raw: bytes, start: int) -> str:
    return f"non-UTF-8 byte 0x{raw[start]:02x} (the file must be plain text in UTF-8 or ASCII)"


def decode_text(path: str | Path, raw: bytes) -> str:
    """``raw`` decoded as UTF-8; a ``ReadError`` naming the line of the first bad byte otherwise."""
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark (Windows editors)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ReadError(path, line, _bad_byte_message(raw, exc.start)) from None


def read_text(path: str | Path, what: str = "") -> str:
    """The whole file as text: ``ReadError`` for a missing file, a directory or bad bytes."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise ReadError(path, None, f"is a directory, expected a {what or 'file'}") from None
    except OSError as exc:
        raise ReadError(path, None, f"cannot open: {exc.strerror}") from None
    return decode_text(path, raw)


def check_line_utf8(path: str | Path, lineno: int, line: str) -> None:
    """For files opened with ``errors="surrogateescape"``: a ReadError when ``line`` holds
    undecodable bytes (cheap for ASCII lines)."""
    if line.isascii():
        return
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(line[exc.start]) - 0xDC00
        raise ReadError(path, lineno, f"non-UTF-8 byte 0x{byte:02x} (the file must be plain text in UTF-8 "
                                      "or ASCII)") from None


def open_text(path: str | Path, what: str = "file"):
    """Open a text file for reading line by line (use ``check_line_utf8`` on each line)."""
    path = Path(path)
    if path.is_dir():
        raise ReadError(path, None, f"is a directory, expected a {what}")
    try:
        return open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise ReadError(path, None, f"cannot open: {exc.strerror}") from None


# ------------------------------------------------------------------ numbers and geometry
def finite_float(tok: str, path: str | Path, lineno: int | None, what: str) -> float:
    """``float(tok)`` (Fortran ``D`` exponents allowed) that must be finite."""
    try:
        v = float(tok.replace("D", "E").replace("d", "e"))
    except ValueError:
        raise ReadError(path, lineno, f"expected a number for {what}, found {tok!r}") from None
    if not math.isfinite(v):
        raise ReadError(path, lineno, f"expected a finite number for {what}, found {tok!r}")
    return v


def check_finite_option(name: str, value: float | None, positive: bool = False,
                        nonnegative: bool = False) -> None:
    """A command-line number must be finite (and > 0 / >= 0 when asked)."""
    if value is None:
        return
    if not math.isfinite(value):
        raise HDNNPError(f"{name} must be a finite number, got {value}")
    if positive and not value > 0:
        raise HDNNPError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise HDNNPError(f"{name} must be >= 0, got {value}")


def close_pairs(positions: np.ndarray, cell: np.ndarray | None, min_distance: float = MIN_DISTANCE):
    """Pairs (i, j, d) of atoms closer than ``min_distance`` (periodic images included), i < j
    or i == j for an atom meeting its own image. positions (n, 3), cell (3, 3) rows or None."""
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    n = len(positions)
    if n < 2 and cell is None:
        return []
    if cell is None and n <= 64:
        diff = positions[:, None, :] - positions[None, :, :]
        d2 = np.einsum("ijk,ijk->ij", diff, diff)
        i, j = np.nonzero(d2 < min_distance * min_distance)
        return [(int(a), int(b), float(np.sqrt(d2[a, b]))) for a, b in zip(i, j) if a < b]
    periodic = cell is not None
    box = np.asarray(cell, dtype=np.float64) if periodic else np.zeros((3, 3))
    span = float(np.ptp(positions, axis=0).max())
    if periodic:
        span = max(span, float(np.linalg.norm(box, axis=1).max()))
    if span > 1e4 * min_distance:  # vesin dies (SIGFPE) beyond ~1e5 cutoffs of span
        if periodic:  # left to the neighbour list (which refuses absurd cells and exact coincidences)
            return []
        from scipy.spatial import cKDTree

        tree = cKDTree(positions)
        pairs = sorted(tree.query_pairs(min_distance))
        return [(a, b, float(np.linalg.norm(positions[a] - positions[b]))) for a, b in pairs]
    from vesin import NeighborList

    nl = NeighborList(cutoff=min_distance, full_list=False)
    i, j, d = nl.compute(points=positions, box=box, periodic=periodic, quantities="ijd")
    return [(int(a), int(b), float(c)) for a, b, c in zip(i, j, d)]


def check_structure_geometry(path: str | Path, positions: np.ndarray, cell: np.ndarray | None,
                             lines: list[int] | None = None, unit: str = "length units of the file",
                             min_distance: float = MIN_DISTANCE, label: str = "") -> None:
    """Finite positions and cell, a cell with volume, no two atoms closer than ``min_distance``.

    lines : file line of each atom (for the message), or None.
    """
    positions = np.asarray(positions, dtype=np.float64)
    where = (lambda i: lines[i]) if lines is not None else (lambda i: None)
    bad = np.nonzero(~np.isfinite(positions).all(axis=1))[0]
    if len(bad):
        raise ReadError(path, where(bad[0]), f"{label}atom {bad[0] + 1} has a non-finite position "
                                             f"{positions[bad[0]].tolist()}")
    if cell is not None:
        cell = np.asarray(cell, dtype=np.float64)
        if not np.isfinite(cell).all():
            raise ReadError(path, None, f"{label}the cell has non-finite components")
        if abs(np.linalg.det(cell)) < 1e-12:
            raise ReadError(path, None, f"{label}the cell is singular (zero volume)")
    pairs = close_pairs(positions, cell, min_distance)
    if pairs:
        i, j, d = pairs[0]
        other = f"its own periodic image" if i == j else f"atom {j + 1}" + (
            f" (line {lines[j]})" if lines is not None else "")
        raise ReadError(path, where(i), f"{label}atom {i + 1} is {d:.3g} from {other}: atoms closer than "
                                        f"{min_distance} ({unit}) coincide; remove duplicates or fix the positions")


# ------------------------------------------------------------------ atomic writes
def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _write_error(path: Path, exc: OSError) -> HDNNPError:
    reason = exc.strerror or str(exc)
    return HDNNPError(f"cannot write {path}: {reason}; nothing was written there")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file next to ``path``; on success it replaces ``path`` (``os.replace``),
    on any error it is removed and ``path`` keeps its old content. OSErrors (full disk,
    permissions) become one ``HDNNPError``."""
    path = Path(path)
    tmp = _tmp_name(path)
    binary = "b" in mode
    try:
        fh = open(tmp, mode, encoding=None if binary else encoding)
    except OSError as exc:
        raise _write_error(path, exc) from None
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _write_error(path, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


# ------------------------------------------------------------------ command-line checks
def check_output_dir(path: str | Path, option: str = "-o", create: bool = True) -> Path:
    """``path`` must be a directory or not exist yet (then it is created, unless ``create`` is
    False: a command that may still fail on its inputs creates it when it writes)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HDNNPError(f"{option} {path}: is a file, expected a directory (or a new name)")
    if not create:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HDNNPError(f"{option} {path}: cannot create the directory: {exc.strerror}") from None
    return path


def check_device(device: str, option: str = "--device") -> None:
    """A torch device that exists here (``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise HDNNPError(f"{option} {device!r}: not a torch device (expected cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HDNNPError(f"{option} {device}: CUDA is not available here (torch {torch.__version__}, "
                             f"{'CPU-only build' if torch.version.cuda is None else 'no GPU found'}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HDNNPError(f"{option} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise HDNNPError(f"{option} {device}: MPS is not available here; use --device cpu")
    elif dev.type != "cpu":
        raise HDNNPError(f"{option} {device}: unsupported device type {dev.type!r} (expected cpu or cuda)")
