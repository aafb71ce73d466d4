"""One-off bit-identity check for descriptor refactors (issue 10).

    python bench/descriptor_identity.py save  OUT.npz   # before the change
    python bench/descriptor_identity.py check OUT.npz   # after: np.array_equal per array

For the H2O, Cu2S and Anisole potentials (first two structures of their input.data, anchors
directory ``$HDNNP_ANCHORS`` or ../shared/anchors/n2p2) it records, for sf_backend "numba" and
"torch": energy, forces, stress, atomic energies from ``Potential.compute`` (numba also with
derivative_mode="store"), raw G, and (numba) dG/dr per pair (mode 1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ANCHORS = Path(os.environ.get("HDNNP_ANCHORS", REPO.parent / "shared" / "anchors" / "n2p2"))
EXAMPLES = ["H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"]


def collect() -> dict[str, np.ndarray]:
    from hdnnp.io.n2p2_data import read_input_data
    from hdnnp.model.potential import Potential

    out = {}
    for ex in EXAMPLES:
        d = ANCHORS / "potentials" / ex
        pot = Potential.from_n2p2(d)
        for si, st in enumerate(read_input_data(d / "input.data")[:2]):
            tag = f"{ex}/{si}"
            for be, dm in (("numba", "recompute"), ("numba", "store"), ("torch", "recompute")):
                p = pot.compute(st, sf_backend=be, derivative_mode=dm)
                k = f"{tag}/{be}-{dm}"
                out[k + "/energy"] = np.array(p.energy)
                out[k + "/forces"] = p.forces
                out[k + "/atomic"] = p.atomic_energies
                if p.stress is not None:
                    out[k + "/stress"] = p.stress
            desc = pot.sf_set.compute(st, derivatives=True)
            out[tag + "/numba/G"] = desc.G
            out[tag + "/numba/D"] = desc.D
            out[tag + "/numba/G0"] = pot.sf_set.compute(st).G
            tsf = pot.torch_symmetry_functions()
            out[tag + "/torch/G"] = tsf.compute(desc.neighbors, desc.species).cpu().numpy()
    return out


def main(collect_fn=None) -> int:
    """``save PATH`` or ``check PATH`` (np.array_equal per array, dtype included) on ``collect_fn()``."""
    cmd, path = sys.argv[1], sys.argv[2]
    res = (collect_fn or collect)()
    if cmd == "save":
        np.savez(path, **res)
        print(f"saved {len(res)} arrays to {path}")
        return 0
    ref = np.load(path)
    bad = 0
    for k in sorted(set(ref.files) | set(res)):
        if k not in ref.files or k not in res:
            print("MISSING", k)
            bad += 1
        elif ref[k].dtype != res[k].dtype or not np.array_equal(ref[k], res[k]):
            same = ref[k].shape == res[k].shape and ref[k].dtype.kind == "f" == res[k].dtype.kind
            print("DIFFERENT", k, np.max(np.abs(ref[k] - res[k])) if same else "")
            bad += 1
    print(f"{len(res)} arrays compared, {bad} not identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
