"""A run folder: everything one training run writes, each file complete or absent.

    args.json       the arguments that run (rewritten at every start, so it always describes it)
    log.csv/.json   one row per finished epoch
    checkpoint.pt   all a resumed run needs (model, optimiser, schedule, RNG and batch-order state)
    best_model.pt   the weights of the epoch with the best validation value
    summary.json    the result: test value at the best validation epoch, status
    history.jsonl   one line per start or resume (when, after which epoch)
    events.out.tfevents.*   the same per-epoch values for TensorBoard
    .lock           locked while a process trains in the folder (folder_lock)

Problems with the folder or its files stop the run with one message naming the file and what to do
(``SystemExit``), never a traceback.
"""
import datetime
import json
import pathlib
import tempfile

import torch

from . import atomic

# the file names of a run folder (the docstring above says what each holds); only these constants
# spell them out
CHECKPOINT, ARGS, LOG, LOG_CSV, SUMMARY, HISTORY, BEST_MODEL = (
    "checkpoint.pt", "args.json", "log.json", "log.csv", "summary.json", "history.jsonl", "best_model.pt")


def timestamp():
    return datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")


def upgrade_names(saved, renamed):
    """Saved arguments with values under an old name ({old: new}) moved to the new name."""
    saved = dict(saved)
    for old, new in renamed.items():
        if old in saved and new not in saved:
            saved[new] = saved.pop(old)
    return saved


class RunFolder:
    def __init__(self, path):
        self.path = pathlib.Path(path)

    @classmethod
    def create_unique(cls, parent):
        """A new folder parent/<date-time to the microsecond>, created with exist_ok=False (a
        numbered suffix if another run took that name first), so two runs never share one."""
        parent = pathlib.Path(parent)
        parent.mkdir(parents=True, exist_ok=True)
        stamp = timestamp()
        for attempt in range(1000):
            path = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path)
        raise OSError(f"could not create a new run folder in {parent}")

    def file(self, name):
        return self.path / name

    def describe_run(self):
        """What makes this folder a run (a checkpoint or a log), or None. A folder where a start
        failed before its first epoch holds neither and may be reused."""
        if not self.path.is_dir():
            return None
        log = self.file(LOG)
        if log.exists():
            try:
                return f"{len(json.loads(log.read_text()))} epochs logged in {LOG}"
            except (OSError, ValueError):
                return f"a {LOG}"
        if self.file(CHECKPOINT).exists():
            return f"a {CHECKPOINT}"
        return None

    def make_writable_folder(self):
        """Create the folder and prove it takes a file (raises OSError naming the problem)."""
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"{self.path} is a file, not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=self.path):
            pass

    # ---- reading ---------------------------------------------------------------------------------

    def read_args(self, required, renamed=None):
        """The saved arguments, checked to hold ``required``; a value saved under an old name of
        ``renamed`` ({old: new}) is read as the new one."""
        path = self.file(ARGS)
        if not path.exists():
            raise SystemExit(f"{path} not found: --resume takes the folder of a run started by a "
                             "train.py (it holds args.json)")
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SystemExit(f"{path} cannot be read as JSON ({err}); it was changed or damaged. "
                             "Restore it, or start a new run with --out-dir.") from None
        if not isinstance(saved, dict):
            raise SystemExit(f"{path} does not hold the arguments of a run; start a new run with --out-dir")
        saved = upgrade_names(saved, renamed or {})
        missing = [name for name in list(required) + ["experiment"] if name not in saved]
        if missing:
            raise SystemExit(f"{path} lacks {', '.join(missing)}: it was not written by this version "
                             "of the train.py scripts. Start a new run with --out-dir.")
        return saved

    def read_summary(self):
        """summary.json (the result where the run finished), or None."""
        try:
            return json.loads(self.file(SUMMARY).read_text())
        except (OSError, ValueError):
            return None

    def read_log(self):
        path = self.file(LOG)
        return json.loads(path.read_text()) if path.exists() else []

    def load_checkpoint(self):
        """The last complete checkpoint, or None before the first epoch. Temporaries left by a
        process killed mid-write are removed first."""
        atomic.remove_stale_temporaries(self.path, CHECKPOINT)
        path = self.file(CHECKPOINT)
        if not path.exists():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated, overwritten, not a torch file ...
            raise SystemExit(
                f"{path} cannot be loaded ({type(err).__name__}: {err}); it is damaged. Delete it to "
                f"restart this run from epoch 0 with its saved arguments, or start a new run with "
                f"--out-dir.") from None

    # ---- writing ---------------------------------------------------------------------------------

    def _write(self, write, name, payload):
        try:
            write(self.file(name), payload)
        except OSError as err:
            raise SystemExit(
                f"could not write {self.file(name)}: {err.strerror or err}. Free space or fix the "
                f"folder's permissions, then continue with --resume {self.path} (the last complete "
                "checkpoint is kept).") from None

    def write_args(self, args):
        self._write(atomic.write_json, ARGS, vars(args))

    def save_checkpoint(self, state):
        self._write(atomic.torch_save, CHECKPOINT, state)

    def save_best_model(self, model):
        self._write(atomic.torch_save, BEST_MODEL, model.state_dict())

    def write_log(self, rows):
        """log.json and log.csv with every epoch so far (consistent with the checkpoint)."""
        self._write(atomic.write_json, LOG, rows)
        header = list(dict.fromkeys(key for row in rows for key in row))  # rows of older runs may lack some
        lines = [",".join(header)] + [",".join("" if row.get(k) is None else str(row[k]) for k in header)
                                      for row in atomic.json_safe(rows)]
        self._write(atomic.write_bytes, LOG_CSV, ("\n".join(lines) + "\n").encode())

    def write_summary(self, summary):
        self._write(atomic.write_json, SUMMARY, summary)

    def append_history(self, event, **details):
        line = json.dumps({"event": event, "time": datetime.datetime.now().isoformat(timespec="seconds"),
                           **details})
        try:
            with open(self.file(HISTORY), "a") as f:
                f.write(line + "\n")
        except OSError as err:
            raise SystemExit(f"could not write {self.file(HISTORY)}: {err.strerror or err}") from None
