"""The package's layering, read from the source: who may import whom."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sc_sed"
LOWER = {"nn", "diffusion", "data"}  # import none of the layers above them
UPPER = {"model", "module", "train", "tl", "pl", "baselines", "datasets", "cli"}


def _imports(path: Path) -> list[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    package = parts[:-1]  # the file's package (for __init__.py: the package itself)
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]
    return names


def _files():
    for path in sorted(PACKAGE.rglob("*.py")):
        sub = path.relative_to(PACKAGE).parts
        yield path, (sub[0] if len(sub) > 1 else Path(sub[0]).stem)


def test_no_import_of_another_packages_private_module():
    bad = []
    for path, sub in _files():
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "sc_sed" and len(parts) > 2 and parts[1] != sub:
                if parts[2].startswith("_") and not parts[1].startswith("_"):
                    bad.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not bad, "import the owning package's public name instead:\n" + "\n".join(bad)


def test_lower_layers_do_not_import_upper_ones():
    bad = []
    for path, sub in _files():
        if sub not in LOWER:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "sc_sed" and len(parts) > 1 and parts[1] in UPPER:
                bad.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert not bad, "\n".join(bad)


def test_tools_and_plots_import_no_torch():
    bad = []
    for path, sub in _files():
        if sub in ("tl", "pl"):
            bad += [f"{path.relative_to(PACKAGE)}: {n}" for n in _imports(path)
                    if n.split(".")[0] in ("torch", "lightning", "scvi")]  # fmt: skip
    assert not bad, "\n".join(bad)
