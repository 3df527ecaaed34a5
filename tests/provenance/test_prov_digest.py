"""Folder digests equal OpenSSF model signing's; files hash like sha256sum."""

from __future__ import annotations

import hashlib
import os

import pytest

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_path, digest_tree, dir_manifest


def _model_signing_digest(path) -> str:
    import model_signing.hashing as ms_hashing
    from model_signing._signing.signing import Payload

    payload = Payload(ms_hashing.hash(path))
    return "sha256:" + payload.statement.pb.subject[0].digest["sha256"]


def test_folder_digest_equals_model_signing(tmp_path):
    root = tmp_path / "model"
    for rel, data in {"a/b/x.bin": b"1", "a-b/y.bin": b"2", "a/.gitignore": b"kept",
                      "empty": b"", ".gitignore": b"ignored", ".git/HEAD": b"ignored",
                      ".github/ci.yml": b"ignored", "z" * 40: os.urandom(3000)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    ours, manifest = digest_tree(root)
    assert ours == _model_signing_digest(root)
    # path order is component-wise ("a/b" before "a-b"), and top-level git files are out
    assert list(manifest or {}) == ["a/.gitignore", "a/b/x.bin", "a-b/y.bin", "empty", "z" * 40]
    (root / "a-b" / "y.bin").write_bytes(b"3")
    assert digest_path(root) == _model_signing_digest(root) != ours


def test_file_digest_is_plain_sha256(tmp_path):
    f = tmp_path / "w.bin"
    data = os.urandom(3 << 20)
    f.write_bytes(data)
    assert digest_path(f) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_parallel_manifest_matches_sequential(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i:02d}").write_bytes(os.urandom(i * 100))
    m = dir_manifest(tmp_path)
    assert m == {f"f{i:02d}": digest_path(tmp_path / f"f{i:02d}") for i in range(40)}


def test_symlinks_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "target").write_text("x")
    (tmp_path / "d" / "link").symlink_to(tmp_path / "target")
    with pytest.raises(InputError, match="symbolic link"):
        digest_path(tmp_path / "d")


def test_unreadable_file_is_an_input_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    f = tmp_path / "locked"
    f.write_text("x")
    f.chmod(0)
    with pytest.raises(InputError, match="cannot read"):
        digest_path(f)


def test_special_file_is_an_input_error(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        digest_path(fifo)
