"""A real two-node Ray cluster: head and worker started with `ray start` (one CPU each, token
authentication on, as `ray start --head` does where ~/.ray/auth_token exists), inside a network and
PID namespace this test makes, so no traffic leaves loopback and every Ray process ends with it.

Phase 1: a 2-seed sweep joins the cluster by HOST:PORT and runs one trial on each node; the worker
node's raylet is killed mid-trial; that trial is tried again on the head from its run folder's
checkpoint; every epoch is logged once and the sweep exits 0. A machine without the cluster's token
is refused with one line. Phase 2: a sweep without --address runs on a local Ray of its own (not on
the cluster `ray start` recorded on the machine); its driver is killed mid-trial, and --resume,
now onto the cluster, finishes it.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import REPO

pytest.importorskip("ray.tune", reason="sweeps need Ray Tune (requirements.txt)")
RAY = pathlib.Path(sys.executable).with_name("ray")
NAMESPACE = ["unshare", "--net", "--pid", "--fork", "--mount-proc"]
HEAD = "127.0.0.1:6379"
EPOCHS = 6  # per trial: the node is lost, or the driver killed, after the first


def children(pid):
    try:
        return [int(c) for c in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def descendants(pid):
    return [d for child in children(pid) for d in [child] + descendants(child)]


def trained_by(run, pid):
    """Whether the process training in ``run`` (the holder of its lock) is ``pid`` or one of its
    descendants: a run folder's lock names its holder by its PID in the namespace."""
    holder = re.match(r"process (\d+) ", (run / ".lock").read_text())
    return holder is not None and any(namespace_pid(p) == int(holder.group(1)) for p in [pid] + descendants(pid))


def namespace_pid(host_pid):
    try:
        status = pathlib.Path(f"/proc/{host_pid}/status").read_text()
    except OSError:
        return None
    return int(next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1])


def wait_for(condition, what, timeout=150):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


# The namespace's first process: reaps every process that ends in it, as an init does (a killed
# raylet must not linger as a zombie that its workers still see alive).
REAPER = "import os, time\nwhile True:\n    try:\n        os.wait()\n    except ChildProcessError:\n        time.sleep(0.2)"


class Namespace:
    """A network + PID namespace whose first process reaps the others; commands enter it with
    nsenter. Killing that first process ends every process in the namespace (the kernel does)."""

    def __init__(self, env):
        self.env = env
        self.unshare = subprocess.Popen(NAMESPACE + ["--kill-child", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1"',
                                                     sys.executable, REAPER])
        self.init = wait_for(lambda: self._alive() and children(self.unshare.pid)[:1], "the namespace")[0]
        wait_for(lambda: self._alive() and "UP" in self.run(["ip", "-o", "link", "show", "lo"]).stdout, "loopback up")

    def _alive(self):
        if self.unshare.poll() is not None:
            raise AssertionError(f"the namespace ended (exit status {self.unshare.returncode}): is `ip` installed?")
        return True

    def command(self, argv):
        return ["nsenter", "-t", str(self.init), "-n", "-p", "-m", "--"] + [str(a) for a in argv]

    def run(self, argv, env=None, timeout=300):
        return subprocess.run(self.command(argv), env=env or self.env, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, argv, log):
        """A command in the background; its process (inside nsenter) is ``.child``."""
        process = subprocess.Popen(self.command(argv), env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        process.child = wait_for(lambda: children(process.pid) and children(process.pid)[0], "the command")
        return process

    def close(self):
        self.unshare.kill()  # --kill-child: the namespace's first process, and with it all others
        self.unshare.wait()


@pytest.fixture
def cluster(tmp_path):
    probe = subprocess.run(NAMESPACE + ["true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare (network and PID namespaces) is refused here: {probe.stderr.strip()}")
    home, ray_tmp = tmp_path / "home", pathlib.Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short socket paths
    home.mkdir()
    env = dict(os.environ, HOME=str(home), RAY_TMPDIR=str(ray_tmp), PYTHONPATH=str(REPO))
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_ADDRESS", None)
    namespace = Namespace(env)
    try:
        assert namespace.run([RAY, "get-auth-token", "--generate"]).returncode == 0
        head = ["--head", "--port", "6379", "--include-dashboard=false", "--disable-usage-stats"]
        for argv, extra in ((head, {}), (["--address", HEAD], {"RAY_AUTH_MODE": "token"})):  # the README's recipe
            started = namespace.run([RAY, "start", "--num-cpus", "1"] + argv, env=dict(env, **extra))
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        namespace.raylets = raylets(ray_tmp)
        assert len(namespace.raylets) == 2
        yield namespace
    finally:
        namespace.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def raylets(ray_tmp):
    """{node id: (host pid, is head)} of the raylets using this test's Ray temp folder."""
    found = {}
    for proc in pathlib.Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv[0].endswith("/raylet") and any(str(ray_tmp) in a for a in argv):
            node = next(a.split("=", 1)[1] for a in argv if a.startswith("--node_id="))
            found[node] = (int(proc.name), "--head" in argv)
    return found


def tune_rows(sweep_dir):
    """[(tune run folder, trial index, row)] of every row the trials reported to Ray Tune."""
    rows = []
    for result in sorted((sweep_dir / "tune").glob("*/*/result.json")):
        for line in result.read_text().splitlines():
            row = json.loads(line)
            rows.append((result.parent.parent.name, row["config"]["trial"], row))
    return rows


def run_folders(sweep_dir):
    return sorted((sweep_dir / "runs").iterdir())


def events(run):
    return [json.loads(line)["event"] for line in (run / "history.jsonl").read_text().splitlines()]


def logged_epochs(run):
    return [row["epoch"] for row in json.loads((run / "log.json").read_text())]


def test_a_sweep_survives_a_lost_node_and_a_killed_driver(cluster, tmp_path):
    from tiny_data import write_mnist
    write_mnist(tmp_path / "mnist", n_train=2000, n_test=50)
    flags = ["psMNIST", "--data-dir", tmp_path / "mnist", "--cache-dir", tmp_path / "cache", "--valid-size", "50",
             "--nhid", "16", "--nlayers", "1", "--batch", "16", "--test-batch", "100", "--device", "cpu"]
    sweep = [sys.executable, "-m", "repro.sweep"]
    head = next(node for node, (_, is_head) in cluster.raylets.items() if is_head)
    worker = next(node for node in cluster.raylets if node != head)

    # a machine without the cluster's token: one line, at once
    (tmp_path / "no-token").mkdir()
    refused = cluster.run(sweep + flags + ["--seeds", "0", "--address", HEAD, "--out-dir", tmp_path / "refused"],
                          env=dict(cluster.env, HOME=str(tmp_path / "no-token")))
    assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
        f"--address {HEAD}: the Ray cluster at {HEAD} refused this sweep: it uses token authentication and this "
        "machine has no Ray token. Copy the head node's ~/.ray/auth_token to this machine's ~/.ray/auth_token (or "
        "set RAY_AUTH_TOKEN); see https://docs.ray.io/en/latest/ray-security/token-auth.html"], refused.stderr[-3000:]

    # phase 1: one trial per node, the worker node lost mid-trial
    out = tmp_path / "sweep"
    with open(tmp_path / "sweep.log", "w") as log:
        driver = cluster.start(sweep + flags + ["--epochs", EPOCHS, "--seeds", "0", "1", "--address", HEAD,
                                                "--out-dir", out], log)
        worker_raylet = cluster.raylets[worker][0]
        wait_for(lambda: (out / "runs").is_dir() and any(
            (run / "log.json").exists() and trained_by(run, worker_raylet) for run in run_folders(out)),
            "an epoch of the trial on the worker node")
        os.kill(worker_raylet, signal.SIGKILL)  # the node is lost; its workers notice and exit
        driver.wait(timeout=150)
    assert driver.returncode == 0, (tmp_path / "sweep.log").read_text()[-5000:]
    rows = tune_rows(out)
    first_nodes = {trial: next(row["ray_node_id"] for _, t, row in rows if t == trial) for trial in (0, 1)}
    assert sorted(first_nodes.values()) == sorted([head, worker])
    moved = next(trial for trial, node in first_nodes.items() if node == worker)
    nodes_by_epoch = [(row["epoch"], row["ray_node_id"]) for _, t, row in rows if t == moved]
    assert len({epoch for epoch, _ in nodes_by_epoch}) == len(nodes_by_epoch)  # no epoch reported twice
    lost_at = max(epoch for epoch, node in nodes_by_epoch if node == worker)
    assert lost_at < EPOCHS and all(node == (worker if epoch <= lost_at else head) for epoch, node in nodes_by_epoch)
    for index, run in enumerate(run_folders(out)):
        assert logged_epochs(run) == list(range(1, EPOCHS + 1))
        assert events(run) == (["start", "resume", "finished"] if index == moved else ["start", "finished"])
        if index == moved:  # continued from its checkpoint, not from epoch 1
            resumed = json.loads((run / "history.jsonl").read_text().splitlines()[1])
            assert resumed["after_epoch"] >= lost_at

    # phase 2: a local Ray although `ray start` recorded a cluster; the driver killed, resumed onto the cluster
    out = tmp_path / "local-sweep"
    with open(tmp_path / "local-sweep.log", "w") as log:
        driver = cluster.start(sweep + flags + ["--epochs", EPOCHS, "--seeds", "2", "--out-dir", out], log)
        wait_for(lambda: (out / "runs").is_dir() and any((r / "log.json").exists() for r in run_folders(out)),
                 "the first epoch of the local sweep")
        [run] = run_folders(out)
        assert trained_by(run, driver.child)  # a Ray the driver started, not a node of the cluster
        os.kill(driver.child, signal.SIGKILL)
        driver.wait(timeout=60)
    resumed = cluster.run(sweep + ["--resume", out, "--address", HEAD])
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert logged_epochs(run) == list(range(1, EPOCHS + 1)) and events(run) == ["start", "resume", "finished"]
    resumed_start = sorted((out / "tune").iterdir())[-1].name
    assert {row["ray_node_id"] for tune_run, _, row in tune_rows(out) if tune_run == resumed_start} == {head}
