"""Training checkpoints that load without executing code.

A checkpoint is ``torch.save`` of a dict holding only tensors and plain data (numbers,
strings, lists, dicts, tuples): model and best-model state dicts, optimizer and LR-scheduler
state dicts, the batch-order generator's and torch's RNG states, the epoch counter, early-
stopping state, the metric history, the resolved configuration and the split. It is read
with ``torch.load(weights_only=True)``, which refuses anything else, so a checkpoint from an
untrusted source cannot run code. Writes go to a temporary file that replaces the old
checkpoint atomically: a run killed mid-write keeps the previous checkpoint.
"""

from __future__ import annotations

import functools
import platform
import sys

import os
from pathlib import Path

import torch

from hdnnp.errors import HDNNPError

FORMAT = "hdnnp-train-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Atomically write ``state`` (plus format/version tags) to ``path``.

    The data goes to ``path.tmp``, is flushed and fsync'ed, then ``os.replace`` swaps it in and the
    directory entry is fsync'ed: a crash or a full disk mid-write leaves the previous checkpoint
    untouched (and no partial file under ``path``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, "version": VERSION, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - directories cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``weights_only=True``; a clear error if it is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise HDNNPError(f"{path}: no checkpoint found (was the run started with hdnnp train, and did it "
                         "finish at least one epoch?)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise HDNNPError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise HDNNPError(f"{path}: not an hdnnp training checkpoint")
    if state.get("version") != VERSION:
        raise HDNNPError(f"{path}: checkpoint version {state.get('version')} is not supported (expected {VERSION})")
    return state


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("hdnnp", "torch", "numpy", "numba", "ase", "vesin", "matplotlib", "tqdm"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out
