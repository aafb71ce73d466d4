"""Imports flow one way: data -> descriptors -> model -> training/dynamics -> sampling -> interfaces."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "hdnnp"
LAYERS = {
    "units": 0, "errors": 0, "structure": 0, "io": 0, "neighbors": 1, "descriptors": 1,
    "model": 2, "testing": 3, "training": 3, "dynamics": 3, "sampling": 4, "interfaces": 5, "ase": 5, "cli": 5,
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "hdnnp" or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


def test_imports_flow_one_way():
    bad = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        own = _layer(".".join(rel.parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                lay = _layer(name)
                if lay is not None and lay > own:
                    bad.append(f"{rel}: imports {name}")
    assert not bad, "imports against the pipeline direction:\n" + "\n".join(bad)


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert names <= set(LAYERS), f"modules without a layer in LAYERS: {sorted(names - set(LAYERS))}"
