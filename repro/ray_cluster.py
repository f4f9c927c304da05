"""Where a sweep's trials run: a local Ray started in-process (the default, even where a `ray start`
cluster runs on the machine), or the running cluster named by ``--address`` (HOST:PORT, or ``auto``:
the one `ray start` recorded on this machine).

Joining a cluster is checked before Ray is asked, so a bad address fails within seconds with one
line instead of Ray's long retries: the address must answer, and the cluster must admit this
machine. Ray 2.5x+ token authentication: `ray start --head` turns it on where a token exists
(``~/.ray/auth_token``, which Ray writes at its first local start), and then refuses every node and
driver without that token; Ray itself sends the token only for ``--address auto``, so for an
explicit HOST:PORT the sweep turns token mode on whenever this machine has a token (a cluster
without token authentication accepts it too).
"""
import contextlib
import os
import pathlib
import socket

TOKEN_DOC = "https://docs.ray.io/en/latest/ray-security/token-auth.html"
REACH_TIMEOUT_S = 5


def token_available():
    """Whether this process has a Ray token where Ray looks for one."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or pathlib.Path.home() / ".ray" / "auth_token"
    return pathlib.Path(path).is_file()


def use_token_if_available():
    """Token mode for this process when a token exists and RAY_AUTH_MODE does not say otherwise.
    Call before Ray is imported (Ray caches its configuration)."""
    if "RAY_AUTH_MODE" not in os.environ and token_available():
        os.environ["RAY_AUTH_MODE"] = "token"


def split_address(address):
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise SystemExit(f"--address {address}: expected HOST:PORT (the address `ray start --head` "
                         "printed, e.g. 10.0.0.5:6379) or auto")
    return host.strip("[]"), int(port)


def resolve(address):
    """HOST:PORT of ``address``; ``auto`` reads the cluster `ray start` recorded on this machine."""
    if address != "auto":
        split_address(address)
        return address
    from ray._private.services import canonicalize_bootstrap_address_or_die
    try:
        return canonicalize_bootstrap_address_or_die("auto")
    except ConnectionError as err:
        raise SystemExit(f"--address auto: {err} Start one with `ray start --head`, pass its HOST:PORT, "
                         "or leave --address out to run Ray here.") from None


def check_reachable(address, given):
    """Something must accept connections at ``address`` within seconds."""
    host, port = split_address(address)
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as err:
        reason = "no answer within {}s".format(REACH_TIMEOUT_S) if isinstance(err, TimeoutError) \
            else (err.strerror or str(err))
        raise SystemExit(f"--address {given}: nothing answers at {address} ({reason}). Is the cluster's "
                         f"head running there (`ray start --head --port {port}`)? Pass the address it "
                         "printed, or leave --address out to run Ray here.") from None


@contextlib.contextmanager
def _stderr_silenced():
    """Ray's C++ client logs each refused attempt to file descriptor 2; our one line says it all."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_admitted(address, given):
    """Ask the cluster's GCS once, as `ray start --address` does: a refused token fails at once."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError
    try:
        with _stderr_silenced():
            GcsClient(address=address).internal_kv_exists(b"repro-sweep-probe", None)
    except AuthenticationError:
        have = "its token is not the cluster's" if token_available() else "this machine has no Ray token"
        raise SystemExit(
            f"--address {given}: the Ray cluster at {address} refused this sweep: it uses token "
            f"authentication and {have}. Copy the head node's ~/.ray/auth_token to this machine's "
            f"~/.ray/auth_token (or set RAY_AUTH_TOKEN); see {TOKEN_DOC}") from None
    except Exception:  # anything else: ray.init below reports it
        pass


def start(address, env_vars):
    """ray.init for a sweep: a new local Ray without ``address``, else the checked cluster.
    Returns the resources of the largest node {"CPU": ..., "GPU": ...}."""
    import ray
    target = "local"
    if address is not None:
        target = resolve(address)
        check_reachable(target, address)
        check_admitted(target, address)
    try:
        ray.init(address=target, include_dashboard=False, runtime_env={"env_vars": env_vars},
                 logging_level="WARNING")
    except (ConnectionError, RuntimeError) as err:
        where = "start Ray here" if address is None else f"join the Ray cluster at {target} (--address {address})"
        raise SystemExit(f"could not {where}: {str(err).splitlines()[0]}") from None
    return largest_node()


def largest_node():
    """The most CPUs and GPUs one alive node offers: what a single trial can ever get."""
    import ray
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    return {kind: max((n.get(kind, 0) for n in nodes), default=0) for kind in ("CPU", "GPU")}
