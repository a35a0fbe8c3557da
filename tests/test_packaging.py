"""Packaging: every subpackage is declared, so a non-editable install ships all of lnlbench."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "lnlbench").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= declared, f"add {sorted(found - declared)} to [tool.setuptools] packages in pyproject.toml"
    assert "lnlbench_plugins" in declared


def test_builtin_methods_use_the_public_entry_point_group():
    import lnlbench_plugins

    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["lnlbench"]
    assert "lnlbench_plugins" in eps.values()  # the package, whose hook imports every module below lazily
    modules = {p.stem for p in (ROOT / "plugins").glob("*.py") if p.stem != "__init__" and not p.stem.startswith("_")}
    assert set(lnlbench_plugins.BUILTIN_METHOD_MODULES) == modules
