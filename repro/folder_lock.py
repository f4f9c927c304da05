"""One process at a time in a run or sweep folder: an OS lock (``fcntl.flock``) on ``<folder>/.lock``,
held while the folder is in use. The kernel releases it when the process ends, however it ends, so a
run killed by SIGKILL never blocks its own ``--resume``; a second process is refused with one line
naming the holder. Locks nest within one process (a sweep trial holds its run folder, then the epoch
loop takes the same lock again).
"""
import contextlib
import fcntl
import os
import pathlib
import socket
import time

LOCK_FILE = ".lock"
_held = {}  # resolved folder -> [open file, depth] for the locks this process holds


class FolderInUse(SystemExit):
    """Another process holds the folder's lock."""


def _holder(lock_file):
    try:
        return lock_file.read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def hold(folder, what, wait_s=0.0):
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block. Waits up to ``wait_s``
    seconds for another holder to finish, then raises FolderInUse naming it; ``what`` says what the
    folder is in the message ("run folder", "sweep folder")."""
    folder = pathlib.Path(folder).resolve()
    if folder in _held:
        _held[folder][1] += 1
        try:
            yield
        finally:
            _held[folder][1] -= 1
        return
    lock_file = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(lock_file, "a+")
    except OSError as err:
        raise SystemExit(f"cannot use {folder} as a {what}: {err.strerror or err}; choose a writable "
                         "--out-dir") from None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise FolderInUse(f"{folder} is in use by {_holder(lock_file)}; a {what} takes one "
                                  "process at a time. Wait until it ends, or choose another --out-dir.") \
                    from None
            time.sleep(0.2)
    handle.truncate(0)
    handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    _held[folder] = [handle, 1]
    try:
        yield
    finally:
        del _held[folder]
        handle.close()  # releases the lock; the file stays (deleting it would race a new holder)
