"""Generations: the manifest switches last, checksums catch damage, leftovers of crashes are ignored."""

import json

from indexes.generations import GenerationStore


def _writer(payload: bytes):
    def write(folder):
        (folder / "data.bin").write_bytes(payload)

    return write


def test_publish_switches_manifest_and_collects_old(tmp_path):
    store = GenerationStore(tmp_path)
    assert store.current() is None
    first = store.publish(_writer(b"one"), {"chunk_count": 1})
    second = store.publish(_writer(b"two"), {"chunk_count": 2})
    assert store.current() == second
    assert second.generation == first.generation + 1
    assert (store.folder(second) / "data.bin").read_bytes() == b"two"
    store.publish(_writer(b"three"), {"chunk_count": 3})
    store.collect_garbage(keep=2)
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-000002", "gen-000003"]


def test_verify_detects_damage(tmp_path):
    store = GenerationStore(tmp_path)
    manifest = store.publish(_writer(b"payload"), {})
    assert store.verify(manifest) == []
    (store.folder(manifest) / "data.bin").write_bytes(b"tampered")
    assert store.verify(manifest) == ["checksum mismatch in gen-000001/data.bin"]
    (store.folder(manifest) / "data.bin").unlink()
    assert store.verify(manifest) == ["missing index file gen-000001/data.bin"]


def test_crash_leftovers_do_not_disturb_the_live_generation(tmp_path):
    store = GenerationStore(tmp_path)
    live = store.publish(_writer(b"live"), {"chunk_count": 1})
    # a writer killed mid-way leaves a temp folder and even a complete but unreferenced generation
    (tmp_path / ".gen-000002.tmp-999").mkdir()
    (tmp_path / "gen-000002").mkdir()
    (tmp_path / ".manifest.json.tmp-999").write_text("{half")
    assert store.current() == live
    nxt = store.publish(_writer(b"next"), {"chunk_count": 2})
    assert nxt.generation == 2 and (store.folder(nxt) / "data.bin").read_bytes() == b"next"
    store.collect_garbage(keep=1)
    assert not (tmp_path / ".gen-000002.tmp-999").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["folder"] == "gen-000002"
