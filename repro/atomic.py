"""Files that are either complete or absent: everything the harness writes (checkpoints, logs, data
caches) goes to a uniquely named temporary file beside its target and is renamed over it, so an
interruption (Ctrl-C, SIGKILL, a full disk) never leaves a torn file under the real name, and two
processes filling the same cache never write into one temporary file."""
import contextlib
import json
import math
import os
import pathlib
import tempfile

import torch

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path``; on success it replaces ``path``, on any error
    (KeyboardInterrupt included) it is removed."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder, name):
    """Delete temporaries of ``name`` left in ``folder`` by a process that was killed mid-write."""
    for stale in pathlib.Path(folder).glob(f"{name}.*{TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)


def torch_save(path, obj):
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_bytes(path, data):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def json_safe(obj):
    """NaN and infinities become None (JSON null), recursively: json.dumps would write bare NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path, obj):
    """Strict JSON (no NaN), written atomically."""
    write_bytes(path, (json.dumps(json_safe(obj), indent=2, allow_nan=False, default=str) + "\n")
                .encode())
