"""``hdnnp sample`` on the dynamics engine: bit-identical to the ASE ``Langevin`` + ``FixCom`` loop it
replaced (reference frames in tests/data/sampling, made with that loop)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ase
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "sampling"


def _make_data_module():
    spec = importlib.util.spec_from_file_location("sampling_make_data", DATA / "make_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(ase.__version__ != "3.29.0", reason="the reference frames were made with ASE 3.29.0")
def test_sample_frames_equal_the_ase_langevin_reference_bytes(tmp_path):
    mod = _make_data_module()
    mod.run(tmp_path)
    for name, *_ in mod.RUNS:
        made, ref = (tmp_path / name).read_bytes(), (DATA / name).read_bytes()
        if made != ref:
            a, b = made.decode().splitlines(), ref.decode().splitlines()
            k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            pytest.fail(f"{name}: differs from the reference at line {k + 1}:\n  made {a[k] if k < len(a) else '<end>'}"
                        f"\n  ref  {b[k] if k < len(b) else '<end>'}")
