"""hdnnp.io.potential_directory: the one place that names a potential directory's files."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from hdnnp.errors import ReadError
from hdnnp.io.potential_directory import PotentialDirectory
from hdnnp.model.potential import Potential

DATA = Path(__file__).resolve().parents[1] / "data"
POT_2G = DATA / "n2p2" / "potentials" / "H2O_RPBE-D3"
POT_4G = DATA / "n2p2_4g" / "potentials" / "Carbon_chain_4G"
SRC = Path(__file__).resolve().parents[2] / "src" / "hdnnp"
#: modules still spelling file names out until they switch to PotentialDirectory (training rewrite)
PENDING: set[str] = set()


def test_file_names():
    d = PotentialDirectory("pot")
    assert d.settings_path == Path("pot/input.nn") and d.scaling_path == Path("pot/scaling.data")
    assert d.weights_path("O") == Path("pot/weights.008.data")
    assert d.charge_weights_path("Au") == Path("pot/weightse.079.data")
    assert d.hardness_path("H") == Path("pot/hardness.001.data")
    assert [p.name for p in d.files(["H", "O"])] == ["input.nn", "scaling.data", "weights.001.data",
                                                     "weights.008.data"]
    assert [p.name for p in d.files(["C"], fourg=True)] == ["input.nn", "scaling.data", "weights.006.data",
                                                            "weightse.006.data", "hardness.006.data"]
    assert PotentialDirectory("pot", "input.nn.4g").settings_path == Path("pot/input.nn.4g")


@pytest.mark.parametrize("src", [POT_2G, POT_4G], ids=["2G", "4G"])
def test_save_reproduces_the_directory(src, tmp_path):
    pot = Potential.from_n2p2(src)
    assert pot.source.path == src and pot.directory == src
    out = pot.save(tmp_path / "copy")
    d = PotentialDirectory(src)
    names = sorted(p.name for p in d.files(pot.elements, pot.is_fourg))
    assert sorted(p.name for p in out.iterdir()) == names, "save wrote other files than the potential's"
    assert (out / "input.nn").read_bytes() == (src / "input.nn").read_bytes(), "input.nn not copied byte for byte"
    again = Potential.from_n2p2(out)
    for e in pot.elements:
        for (w1, b1), (w2, b2) in zip(pot.networks[e].get_weights(), again.networks[e].get_weights()):
            assert np.array_equal(w1, w2) and np.array_equal(b1, b2), f"weights of {e} changed on a round trip"
    if pot.is_fourg:
        assert again.hardness_physical() == pytest.approx(pot.hardness_physical(), rel=1e-15)
    with pytest.raises(FileExistsError, match="refusing to overwrite .*input.nn"):
        pot.save(out)


def test_potential_from_settings_writes_its_settings(tmp_path):
    src = PotentialDirectory(POT_2G)
    pot = Potential.from_settings(src.read_settings(), scaling_path=src.scaling_path)
    assert pot.source is None and pot.directory is None
    out = PotentialDirectory(pot.save(tmp_path / "new"))
    assert out.read_settings().get_str("elements") == src.read_settings().get_str("elements")
    assert out.scaling_path.is_file() and all(out.weights_path(e).is_file() for e in pot.elements)


def test_missing_directory_is_a_read_error(tmp_path):
    with pytest.raises(ReadError, match="potential directory not found"):
        Potential.from_n2p2(tmp_path / "nope")


def test_file_name_patterns_live_in_one_module():
    """Only io/potential_directory.py spells weights/weightse/hardness file names out."""
    pattern = re.compile(r"""["'](weights|weightse|hardness)\.(\{|%03d)""")
    found = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        if rel in PENDING or rel == "io/potential_directory.py":
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{rel}:{text.count(chr(10), 0, m.start()) + 1}" for m in pattern.finditer(text)]
    assert not found, f"file names spelled outside PotentialDirectory: {found}"
