"""What ``hdnnp train`` reads: the settings (n2p2 input.nn or the prototype's control.in) and the
training data, and the unit labels they declare."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hdnnp.errors import HDNNPError
from hdnnp.io.input_nn import Settings


# ---------------------------------------------------------------------------- inputs
def is_prototype_config(path: Path) -> bool:
    """control.in of the prototype (``atom_type_N`` lines) rather than an n2p2 input.nn."""
    if path.suffix == ".in" and path.name != "input.nn":
        return True
    try:
        with open(path, encoding="utf-8") as fh:
            return any(line.lstrip().startswith("atom_type_") for line in fh)
    except OSError:
        return False


@dataclass
class Inputs:
    settings: Settings
    data_path: Path
    config_path: Path
    prototype: bool = False
    warnings: list[str] = field(default_factory=list)


def read_inputs(config: str | Path, data: str | Path | None = None) -> Inputs:
    """Settings (n2p2 input.nn, or the prototype's control.in converted) and the data path."""
    config = Path(config)
    if not config.is_file():
        raise HDNNPError(f"{config}: configuration file not found (expected an n2p2 input.nn or a control.in)")
    if is_prototype_config(config):
        from hdnnp.io.prototype import control_to_settings, read_control

        cf = read_control(config)
        settings, warns = control_to_settings(cf)
        if data is None:
            data = cf.resolve("atomic_data_path")
            if data is None:
                raise cf.error("atomic_data_path", "atomic_data_path (the input.data to train on) is missing; "
                                                   "add it or pass --data")
        return Inputs(settings, Path(data), config, prototype=True, warnings=warns)
    settings = Settings.read(config)
    if data is None:
        data = config.parent / "input.data"
    return Inputs(settings, Path(data), config)


# ---------------------------------------------------------------------------- helpers
def unit_labels(settings: Settings) -> tuple[str, str, float, float]:
    """(energy label, force label, factor to it from file units, force factor)."""
    from hdnnp import units

    lu, eu = settings.get_str("hdnnp_length_unit"), settings.get_str("hdnnp_energy_unit")
    if lu and eu:
        try:
            ef = units.energy_factor(eu) * 1000.0
            lf = units.length_factor(lu)
            return "meV/atom", "meV/Å", ef, ef / lf
        except ValueError:
            pass
    e = eu or "energy unit"  # n2p2 files carry no units: the data's own
    length = lu or "length unit"
    return f"{e}/atom", f"{e}/{length}", 1.0, 1.0
