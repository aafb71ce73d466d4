"""An n2p2 potential directory: the one place that knows its file names (SPEC §3, SPEC-4G §1).

=====================  ============================================================
``input.nn``           settings (keywords, symmetry functions, normalisation)
``scaling.data``       symmetry-function statistics per element
``weights.ZZZ.data``   short-range network of the element with atomic number ZZZ
``weightse.ZZZ.data``  4G only: electronegativity (chi) network of element ZZZ
``hardness.ZZZ.data``  4G only: atomic hardness J of element ZZZ (energy / charge^2)
=====================  ============================================================

``PotentialDirectory`` names these files and reads/writes them with the format readers of
``hdnnp.io`` (``read_weights``, ``read_scaling_data``, ...); it knows nothing about networks or
torch, so ``Potential``, training, export and the 4G stages all go through it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers

from hdnnp.errors import ReadError
from hdnnp.io.input_nn import Settings
from hdnnp.io.scaling_data import ScalingStats, read_scaling_data, write_scaling_data
from hdnnp.io.weights_data import read_hardness, read_weights, write_hardness, write_weights

#: file names of a potential directory (ZZZ: atomic number, three digits)
SETTINGS_FILE = "input.nn"
SCALING_FILE = "scaling.data"
WEIGHTS_PATTERN = "weights.{z:03d}.data"
CHARGE_WEIGHTS_PATTERN = "weightse.{z:03d}.data"
HARDNESS_PATTERN = "hardness.{z:03d}.data"
#: glob matching every short-range weights file
WEIGHTS_GLOB = "weights.[0-9][0-9][0-9].data"


def weights_name(element: str) -> str:
    """``weights.ZZZ.data`` of an element symbol."""
    return WEIGHTS_PATTERN.format(z=atomic_numbers[element])


class PotentialDirectory:
    """The files of one n2p2 potential directory (which need not exist yet).

    path : the directory; settings_file : name of the settings file in it (default ``input.nn``).
    """

    def __init__(self, path: str | Path, settings_file: str = SETTINGS_FILE):
        self.path = Path(path)
        self.settings_file = settings_file

    def __repr__(self) -> str:
        return f"PotentialDirectory({str(self.path)!r})"

    # ------------------------------------------------------------------ names
    @property
    def settings_path(self) -> Path:
        return self.path / self.settings_file

    @property
    def scaling_path(self) -> Path:
        return self.path / SCALING_FILE

    def weights_path(self, element: str) -> Path:
        return self.path / WEIGHTS_PATTERN.format(z=atomic_numbers[element])

    def charge_weights_path(self, element: str) -> Path:
        return self.path / CHARGE_WEIGHTS_PATTERN.format(z=atomic_numbers[element])

    def hardness_path(self, element: str) -> Path:
        return self.path / HARDNESS_PATTERN.format(z=atomic_numbers[element])

    def files(self, elements: Iterable[str], fourg: bool = False) -> list[Path]:
        """Every file a potential of ``elements`` has here: settings, scaling, weights (+ 4G files)."""
        elements = list(elements)
        out = [self.settings_path, self.scaling_path] + [self.weights_path(e) for e in elements]
        if fourg:
            out += [f(e) for e in elements for f in (self.charge_weights_path, self.hardness_path)]
        return out

    # ---------------------------------------------------------------- reading
    def check_exists(self) -> None:
        if not self.path.is_dir():
            raise ReadError(self.path, None, "potential directory not found")

    def read_settings(self) -> Settings:
        return Settings.read(self.settings_path)

    def read_scaling(self, n_sf: Sequence[int]) -> list[ScalingStats]:
        """``scaling.data``; ``n_sf[k]`` is the symmetry-function count of the k-th element."""
        return read_scaling_data(self.scaling_path, list(n_sf))

    def read_weights(self, element: str, layer_sizes: Sequence[int]) -> list:
        return read_weights(self.weights_path(element), layer_sizes)

    def read_charge_weights(self, element: str, layer_sizes: Sequence[int]) -> list:
        return read_weights(self.charge_weights_path(element), layer_sizes)

    def read_hardness(self, element: str) -> float:
        """Hardness J of ``element`` in the potential's physical units (energy / charge^2)."""
        return read_hardness(self.hardness_path(element))

    # ---------------------------------------------------------------- writing
    def existing(self, elements: Iterable[str], fourg: bool = False) -> list[Path]:
        """The files of ``files(elements, fourg)`` that already exist."""
        return [p for p in self.files(elements, fourg) if p.exists()]

    def write_settings(self, settings: Settings, source: "PotentialDirectory | None" = None) -> None:
        """``input.nn``: copied byte for byte from ``source`` when given and another file, else
        written from ``settings``."""
        self.path.mkdir(parents=True, exist_ok=True)
        if source is not None and source.settings_path.resolve() != self.settings_path.resolve():
            shutil.copyfile(source.settings_path, self.settings_path)
        else:
            settings.write(self.settings_path)

    def write_scaling(self, stats: list[ScalingStats]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_scaling_data(self.scaling_path, stats)

    def write_weights(self, element: str, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_weights(self.weights_path(element), weights)

    def write_charge_weights(self, element: str, weights: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_weights(self.charge_weights_path(element), weights)

    def write_hardness(self, element: str, hardness: float) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_hardness(self.hardness_path(element), hardness)

    def copy_file_from(self, source: "PotentialDirectory", name: str) -> None:
        """Copy file ``name`` of ``source`` here byte for byte (no-op when it is the same file)."""
        self.path.mkdir(parents=True, exist_ok=True)
        src, dst = source.path / name, self.path / name
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)
