"""One-off check that a refactor of the SF plan leaves the kernel tables and the torch blocks
unchanged: dumps them for the synthetic SF sets of tests/descriptors/test_torch_backend.py (every SF type x
every cutoff type) and the three anchor potentials.

    PYTHONPATH=<old src> python bench/descriptor_tables_identity.py save old.npz
    PYTHONPATH=<new src> python bench/descriptor_tables_identity.py check old.npz
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
ANCHORS = Path(os.environ.get("HDNNP_ANCHORS", REPO.parent / "shared" / "anchors" / "n2p2"))


def sets():
    import test_torch_backend as T

    from hdnnp.io.input_nn import Settings
    from hdnnp.model.potential import Potential

    for ct, alpha in T.CUTOFFS:
        yield f"synthetic-{ct}", T._sf_set(ct, alpha)
        yield f"synthetic-dense-{ct}", T._sf_set(ct, alpha, [t.replace(" 4.0", " 7.0") for t in T.SF_LINES])
    for ex in ["H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN"]:
        yield ex, Potential.from_n2p2(ANCHORS / "potentials" / ex).sf_set


def collect():
    from hdnnp.descriptors.torch_backend import TorchSymmetryFunctions

    out = {}
    for name, sfs in sets():
        for f, arr in zip(sfs.kernel_tables._fields, sfs.kernel_tables):
            out[f"{name}/numba/{f}"] = np.asarray(arr)
        tsf = TorchSymmetryFunctions(sfs)
        for k, b in enumerate(tsf.radial_blocks):
            out[f"{name}/torch/rad{k}"] = np.array(repr((b.e, b.a, b.cols.tolist(), b.coef, b.r_low, b.r_cut,
                                                        [p[:1] + tuple(str(x) for x in p[1:]) for p in b.basis.parts])))
        for k, b in enumerate(tsf.angular_blocks):
            out[f"{name}/torch/ang{k}"] = np.array(repr((b.e, b.a, b.b, b.cols.tolist(), b.q_of.tolist(),
                                                        b.k_of.tolist(), b.coef, b.n_narrow, b.kinds.specs,
                                                        b.r_low, b.r_cut, b.r_cut_narrow,
                                                        [p[:1] + tuple(str(x) for x in p[1:]) for p in b.basis.parts])))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "bench"))
    from descriptor_identity import main

    sys.exit(main(collect))
