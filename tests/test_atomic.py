"""Atomic writes (repro/atomic.py): a write interrupted halfway (an error, Ctrl-C, SIGKILL) leaves the
previous file complete and loadable, and what a killed writer leaves behind is a temporary that
``remove_stale_temporaries`` deletes without touching anything else. The interruptions are made
deterministic by serializers that write half their bytes and then fail."""
import errno
import json
import os
import pathlib
import signal

import pytest
import torch

from repro import atomic


def half_then(fail):
    """A replacement for ``pathlib.Path.write_bytes`` that writes the first half of the data to the
    file, flushes it to disk and then calls ``fail(path)``."""
    def write_bytes(path, data):
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        assert 0 < path.stat().st_size < len(data)  # the write really stopped halfway
        fail(path)
    return write_bytes


def raise_(error):
    def fail(path):
        raise error
    return fail


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
                         ids=["disk-full", "ctrl-c"])
def test_torch_save_interrupted_halfway_keeps_the_previous_checkpoint(tmp_path, monkeypatch, error):
    target = tmp_path / "checkpoint.pt"
    atomic.torch_save(target, {"epoch": 1, "weights": torch.arange(1000.0)})
    real_save = torch.save

    def torn_save(obj, f):
        real_save(obj, f)  # the whole new checkpoint, then cut to its first half before failing
        data = pathlib.Path(f).read_bytes()
        half_then(raise_(error))(pathlib.Path(f), data)
    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(type(error)):
        atomic.torch_save(target, {"epoch": 2, "weights": torch.zeros(1000)})
    monkeypatch.setattr(torch, "save", real_save)
    previous = torch.load(target, weights_only=False)
    assert previous["epoch"] == 1 and torch.equal(previous["weights"], torch.arange(1000.0))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # the temporary is gone


def test_json_interrupted_halfway_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    atomic.write_json(target, {"status": "finished", "epochs": 3, "log": list(range(100))})
    before = target.read_bytes()
    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then(raise_(KeyboardInterrupt())))
    with pytest.raises(KeyboardInterrupt):
        atomic.write_json(target, {"status": "finished", "epochs": 4, "log": list(range(200))})
    assert target.read_bytes() == before
    assert json.loads(before)["epochs"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_writer_killed_halfway_leaves_only_a_temporary_that_resume_removes(tmp_path):
    """SIGKILL runs no cleanup: the torn bytes stay in a temporary beside the target, named so that
    remove_stale_temporaries(folder, name) finds it, and the target itself is untouched."""
    target = tmp_path / "checkpoint.pt"
    atomic.torch_save(target, {"epoch": 1})
    bystanders = {"log.json": b"[]", "checkpoint.pt.bak": b"a copy", "best_model.pt.x1y2.tmp": b"busy",
                  "checkpoint.ptx.tmp": b"another file's"}
    for name, content in bystanders.items():
        (tmp_path / name).write_bytes(content)
    pid = os.fork()
    if pid == 0:  # the child is killed in the middle of its write
        try:
            pathlib.Path.write_bytes = half_then(lambda path: os.kill(os.getpid(), signal.SIGKILL))
            atomic.write_bytes(target, b"new checkpoint " * 1000)
        finally:
            os._exit(1)  # only reached if the write did not happen as planned
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert torch.load(target, weights_only=False) == {"epoch": 1}
    left = sorted(set(p.name for p in tmp_path.iterdir()) - set(bystanders) - {"checkpoint.pt"})
    assert len(left) == 1 and left[0].startswith("checkpoint.pt.") and left[0].endswith(".tmp")
    assert 0 < (tmp_path / left[0]).stat().st_size < len(b"new checkpoint " * 1000)

    atomic.remove_stale_temporaries(tmp_path, "checkpoint.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*bystanders, "checkpoint.pt"])
    assert all((tmp_path / name).read_bytes() == content for name, content in bystanders.items())
    assert torch.load(target, weights_only=False) == {"epoch": 1}


def test_a_failed_write_of_a_new_file_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(pathlib.Path, "write_bytes", half_then(raise_(OSError(errno.EIO, "I/O error"))))
    with pytest.raises(OSError, match="I/O error"):
        atomic.write_bytes(tmp_path / "cache.bin", b"x" * 100)
    assert not list(tmp_path.iterdir())


def test_json_is_strict_with_non_finite_values_as_null(tmp_path):
    nan, inf = float("nan"), float("inf")
    atomic.write_json(tmp_path / "s.json", {"rmse": nan, "curve": [1.0, inf, (-inf, 2.5)],
                                            "nested": {"best": {"valid": -inf}}, "folder": tmp_path})

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    text = (tmp_path / "s.json").read_text()
    assert json.loads(text, parse_constant=refuse) == {
        "rmse": None, "curve": [1.0, None, [None, 2.5]], "nested": {"best": {"valid": None}},
        "folder": str(tmp_path)}
    assert text.endswith("}\n")
