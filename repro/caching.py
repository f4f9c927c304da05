"""Derived-data caches keyed on their sources: a cache file's name carries a digest of the source
files' paths, sizes and modification times, so a changed, repaired or different source never
serves a stale cache; writes are atomic and an unreadable cache entry is rebuilt."""
import hashlib
import pathlib

import torch

from . import atomic


def source_key(paths):
    """12 hex digits identifying these files as they are now (path, size, mtime)."""
    lines = []
    for path in sorted(pathlib.Path(p).resolve() for p in paths):
        stat = path.stat()
        lines.append(f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()[:12]


def cached(path, make):
    """torch.load(path) if it holds a readable cache, else make() saved there atomically."""
    path = pathlib.Path(path)
    if path.exists():
        try:
            return torch.load(path, weights_only=False)
        except Exception as err:  # a cache written by an older version, damaged by hand ...
            print(f"cache {path} is unreadable ({type(err).__name__}); rebuilding it")
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.torch_save(path, value)
    return value
