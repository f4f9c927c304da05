"""Derived-data caches (repro/caching.py): the key follows each source file's size and modification
time (either alone changing gives a new key), not the order or spelling of the paths; a cache is
made once, then read, and an unreadable cache file is rebuilt."""
import os

import pytest
import torch

from repro.caching import cached, source_key


@pytest.fixture
def sources(tmp_path):
    paths = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for i, path in enumerate(paths):
        path.write_text(f"review number {i}")
        os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000 + i))
    return paths


def test_key_is_stable_for_the_same_files_however_they_are_named(sources, monkeypatch):
    key = source_key(sources)
    assert len(key) == 12 and int(key, 16) >= 0
    assert source_key(list(reversed(sources))) == key
    monkeypatch.chdir(sources[0].parent)
    assert source_key([s.name for s in sources]) == key  # relative paths name the same files


def test_key_changes_with_the_size_alone(sources):
    key, stat = source_key(sources), sources[1].stat()
    sources[1].write_text("review number 1, repaired")
    os.utime(sources[1], ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same time, new size
    assert source_key(sources) != key


def test_key_changes_with_the_modification_time_alone(sources):
    key, stat = source_key(sources), sources[1].stat()
    sources[1].write_text("review number 9")  # same size, new content
    os.utime(sources[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert sources[1].stat().st_size == stat.st_size and source_key(sources) != key


def test_key_differs_between_file_sets(sources):
    assert len({source_key(sources), source_key(sources[:1]), source_key(sources[1:])}) == 3


def test_cached_makes_once_then_reads(tmp_path):
    made = []

    def make():
        made.append(1)
        return {"ids": torch.arange(5)}
    path = tmp_path / "cache" / "deep" / "ids.pt"  # folders are created
    first = cached(path, make)
    again = cached(path, make)
    assert made == [1] and torch.equal(again["ids"], first["ids"])
    assert torch.equal(torch.load(path, weights_only=False)["ids"], torch.arange(5))


@pytest.mark.parametrize("damage", [b"", b"not a torch file", None], ids=["empty", "garbage", "truncated"])
def test_an_unreadable_cache_is_rebuilt_and_replaced(tmp_path, capsys, damage):
    path = tmp_path / "ids.pt"
    cached(path, lambda: {"ids": torch.arange(100)})
    path.write_bytes(path.read_bytes()[:50] if damage is None else damage)
    value = cached(path, lambda: {"ids": torch.arange(3)})
    assert torch.equal(value["ids"], torch.arange(3))
    assert f"cache {path} is unreadable" in capsys.readouterr().out
    assert torch.equal(torch.load(path, weights_only=False)["ids"], torch.arange(3))
