"""The public API: every export resolves, and docs/python-api.md's examples run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import mltrail
from testkit import ROOT

DOC = ROOT / "docs" / "python-api.md"


def test_every_export_resolves_and_import_is_lazy() -> None:
    assert mltrail.__all__ == sorted(mltrail.__all__)
    for name in mltrail.__all__:
        assert getattr(mltrail, name) is not None, name
    with pytest.raises(AttributeError):
        mltrail.no_such_name  # noqa: B018


def test_python_api_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLTRAIL_PASSWORD", "pw")
    namespace: dict[str, object] = {}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # name the block that drifted from the code
            raise AssertionError(f"example {i} of {DOC.name} fails: {exc!r}") from exc
    assert os.path.exists(tmp_path / "proof" / "manifest.json")


def test_all_lists_exactly_the_exports() -> None:
    assert set(mltrail.__all__) == set(mltrail._EXPORTS)
