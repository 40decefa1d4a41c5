"""A plain ``pip install .`` must carry the style sheet and icons the window loads at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio import RESOURCES_DIR

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]


def test_every_resource_file_is_declared_as_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert any(pattern.startswith("resources") for pattern in setuptools["packages"]["find"]["include"])
    declared = {path for pattern in setuptools["package-data"]["resources"] for path in RESOURCES_DIR.glob(pattern)}
    shipped = {path for path in RESOURCES_DIR.rglob("*") if path.is_file()}
    assert shipped and shipped <= declared, f"not in package-data: {sorted(map(str, shipped - declared))}"
