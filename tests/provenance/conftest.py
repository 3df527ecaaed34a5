"""Fixtures for provenance tests: a project folder with a home and a small data set."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, home):
    """``tmp_path`` holding a home (``.mltrail``), ``raw/`` (3 files) and ``prep.py``."""
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "a.csv").write_text("x,y\n1,2\n")
    (raw / "b.csv").write_text("x,y\n3,4\n")
    (raw / "sub" / "c.csv").write_text("x,y\n5,6\n")
    return tmp_path
