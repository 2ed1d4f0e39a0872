"""Discovery: recursive, hidden files skipped, symlinks never lead outside the folder."""

import pytest

from ingest.discovery import discover
from rag.errors import NotFoundError, PathNotAllowedError
from rag.paths import check_within_roots


def test_walks_recursively_and_skips_hidden(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.md").write_text("# one")
    (tmp_path / "two.txt").write_text("two")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / ".rag-access.yaml").write_text("groups: [x]")
    (tmp_path / "~$lock.docx").write_text("x")
    found = discover(tmp_path)
    assert [p.name for p in found.files] == ["one.md", "two.txt"]
    assert found.skipped == []


def test_symlinks_leaving_the_folder_are_reported_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "doc.txt").write_text("doc")
    (root / "escape.txt").symlink_to(outside / "secret.txt")
    (root / "escape-dir").symlink_to(outside)
    (root / "alias.txt").symlink_to(root / "doc.txt")
    found = discover(root)
    assert [p.name for p in found.files] == ["doc.txt"]
    assert sorted(p.name for p, _ in found.skipped) == ["escape-dir", "escape.txt"]
    assert all("leaves the ingested folder" in why for _, why in found.skipped)


def test_single_file_and_missing_path(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("x")
    assert discover(f).files == [f.resolve()]
    with pytest.raises(NotFoundError):
        discover(tmp_path / "missing")


def test_api_ingestion_is_confined_to_roots(tmp_path):
    root = tmp_path / "shared-drive"
    (root / "hr").mkdir(parents=True)
    assert check_within_roots(root / "hr", [root]) == (root / "hr").resolve()
    with pytest.raises(PathNotAllowedError):
        check_within_roots(root / ".." / "etc", [root])
    with pytest.raises(PathNotAllowedError):
        check_within_roots(tmp_path / "shared-drive-evil", [root])
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathNotAllowedError):
        check_within_roots(root / "link", [root])
    with pytest.raises(PathNotAllowedError):
        check_within_roots(root, [])


def test_unreadable_folder_is_reported_and_protects_its_documents(tmp_path, monkeypatch):
    import os

    real_walk = os.walk

    def walk_refusing_locked(top, followlinks=False, onerror=None):
        # as os.walk does for a folder it may not list (tests run as root, where chmod would not stop it)
        for dirpath, dirnames, filenames in real_walk(top, followlinks=followlinks):
            if dirpath.endswith("locked"):
                onerror(PermissionError(13, "Permission denied", dirpath))
                continue
            yield dirpath, dirnames, filenames

    monkeypatch.setattr(os, "walk", walk_refusing_locked)
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.txt").write_text("a")
    (tmp_path / "open.txt").write_text("b")
    found = discover(tmp_path)
    assert [p.name for p in found.files] == ["open.txt"]
    assert found.skipped == [(tmp_path / "locked", "folder not readable: Permission denied")]
    assert not found.fully_seen(str(tmp_path / "locked" / "a.txt"))
    assert found.fully_seen(str(tmp_path / "gone.txt"))
