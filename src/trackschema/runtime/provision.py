"""PostgreSQL for tests, the sandbox and the demo.

`provision()` tries, in order:

1. an explicit URL (the caller passes it; tests use `TRACKSCHEMA_TEST_DATABASE_URL`);
2. a testcontainers `PostgresContainer`, when testcontainers is installed and a Docker
   engine answers (its constructor raises `DockerException` when none does);
3. a private cluster from the local server binaries (PATH, `pg_config --bindir`, then
   Debian's `/usr/lib/postgresql/<version>/bin`), on a free loopback port. PostgreSQL
   refuses to run as root, so under root the cluster is owned by and started as the
   `postgres` system user.

A throwaway server is removed when its `PostgresServer.stop()` runs (also at interpreter
exit). `TRACKSCHEMA_PROVISION=local|container` skips the other method.

`CitusCluster` (`start_citus()`) is a local Citus cluster made of such clusters: a
coordinator and N workers on free loopback ports, no Docker (`sandbox start --citus N`,
the test plugin's `trackschema_citus_cluster`; see docs/citus.md#local-cluster).

`version="16"` asks for one PostgreSQL major version: the image `postgres:16` (unless an
image is given), or local binaries of that version (`/usr/lib/postgresql/16/bin`, or any
candidate directory whose `postgres --version` says 16); when neither exists the error
says what to install. `fast=True` (the test plugin and `trackschema ci`: many small
databases, made and dropped) puts a local cluster's data directory on a memory file
system (`/dev/shm`, when it is a writable tmpfs with room), where `CREATE DATABASE ...
TEMPLATE` does not wait behind other processes' disk writes, and gives a container the
throwaway cluster's durability settings (fsync off).
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from trackschema.errors import ProvisioningError

DEFAULT_IMAGE = "postgres:15"
INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; "
    "Fedora: dnf install postgresql-server; macOS: brew install postgresql@15), "
    "or start a Docker engine, or pass a server URL (TRACKSCHEMA_TEST_DATABASE_URL / --database-url)"
)
# Settings for a throwaway cluster: durability traded for speed, which is what tests,
# demos and benchmarks of relative cost want.
THROWAWAY_CONF = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "256MB",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "log_min_messages": "warning",
}
# A `fast` local cluster keeps its data in memory: WAL is recycled sooner so it stays small.
MEMORY_CONF = {"max_wal_size": "1GB"}
# The durability settings of THROWAWAY_CONF, for a `fast` container.
CONTAINER_FAST_CONF = {key: THROWAWAY_CONF[key] for key in ("fsync", "synchronous_commit", "full_page_writes")}
MEMORY_DIR = Path("/dev/shm")
MEMORY_MIN_FREE = 2 * 1024**3  # bytes free on the memory file system before a cluster goes there
VERSIONS = ("15", "16", "17")  # the majors `version=` accepts


@dataclass
class PostgresServer:
    """A reachable PostgreSQL server and how to get rid of it.

    `url` is a libpq URL for a superuser, pointing at the `postgres` database.
    """

    url: str
    kind: str  # "url" | "container" | "local"
    detail: str
    tried: list[str] = field(default_factory=list)
    _stop: Callable[[], None] | None = None
    handle: object | None = None  # the LocalCluster or the container, for the sandbox

    def stop(self) -> None:
        """Stop and remove the server if this process started it; idempotent."""
        stop, self._stop = self._stop, None
        if stop:
            stop()

    def __enter__(self) -> "PostgresServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def provision(explicit_url: str | None = None, *, mode: str | None = None, extra_conf: dict[str, str] | None = None, base_dir: Path | None = None, persistent: bool = False,
              version: str | None = None, image: str | None = None, fast: bool = False) -> PostgresServer:
    """A PostgreSQL server, found or started as the module docstring describes.

    `persistent` keeps a local cluster after this process exits (the sandbox); its data
    lives in `base_dir`. `version` (a major: 15, 16, 17) and `image` (a container image)
    choose the server; `fast` trades durability for speed (module docstring). An explicit
    URL is used as given (the caller checks its version). Raises `ProvisioningError`
    naming what to install when every method fails.
    """
    if explicit_url:
        return PostgresServer(url=explicit_url, kind="url", detail="explicit URL")
    mode = (mode or os.environ.get("TRACKSCHEMA_PROVISION") or "auto").lower()
    if mode not in {"auto", "container", "local"}:
        raise ProvisioningError(f"TRACKSCHEMA_PROVISION={mode!r}: use auto, container or local")
    if version is not None and version not in VERSIONS:
        raise ProvisioningError(f"PostgreSQL {version!r}: choose one of {', '.join(VERSIONS)}")
    tried: list[str] = []
    if mode in {"auto", "container"}:
        conf = {**CONTAINER_FAST_CONF, **(extra_conf or {})} if fast else extra_conf
        server = start_container(tried, persistent=persistent, extra_conf=conf, image=image or (f"postgres:{version}" if version else None))
        if server:
            server.tried = tried
            return server
    if mode in {"auto", "local"}:
        bindir = find_pg_bindir(version=version) if version else find_pg_bindir()
        if bindir is None:
            tried.append(f"local binaries: no PostgreSQL {version} server in /usr/lib/postgresql/{version}/bin, on PATH or from pg_config" if version
                         else "local binaries: no initdb/pg_ctl on PATH, from pg_config, or in /usr/lib/postgresql/*/bin")
        else:
            in_memory = fast and base_dir is None and not persistent
            cluster = LocalCluster(bindir, base_dir=base_dir, extra_conf={**(MEMORY_CONF if in_memory else {}), **(extra_conf or {})},
                                   in_memory=in_memory)
            cluster.start()
            server = PostgresServer(
                url=cluster.url, kind="local", detail=cluster.describe(), tried=tried,
                _stop=None if persistent else cluster.destroy, handle=cluster,
            )
            if not persistent:
                atexit.register(server.stop)
            return server
    if version:
        raise ProvisioningError(f"PostgreSQL {version} is not available (" + "; ".join(tried) + "): " + install_hint(version))
    raise ProvisioningError("no PostgreSQL server available (" + "; ".join(tried) + "): " + INSTALL_HINT)


def install_hint(version: str) -> str:
    """What to install for PostgreSQL `version` (one line)."""
    return (f"install its server (Debian/Ubuntu: apt-get install postgresql-{version}, from apt.postgresql.org when the "
            f"distribution lacks it; Fedora: dnf install postgresql{version}-server; macOS: brew install postgresql@{version}), "
            f"or start a Docker engine (image postgres:{version}), or pass a server URL")


# --- testcontainers -------------------------------------------------------------------


def _container_class() -> type | None:
    try:
        from testcontainers.community.postgres import PostgresContainer  # type: ignore[import-not-found]
    except ImportError:
        try:
            from testcontainers.postgres import PostgresContainer  # type: ignore[import-not-found,no-redef]
        except ImportError:
            return None
    return PostgresContainer


def start_container(tried: list[str], *, persistent: bool = False, container_class: type | None = None, extra_conf: dict[str, str] | None = None,
                    image: str | None = None) -> PostgresServer | None:
    """A `PostgresContainer`, or None with the reason appended to `tried`.

    `image` defaults to `TRACKSCHEMA_POSTGRES_IMAGE`, else `postgres:15`. `extra_conf`
    becomes `-c name=value` server arguments (the image's entrypoint passes arguments that
    start with `-` to postgres).
    """
    cls = container_class or _container_class()
    if cls is None:
        tried.append("testcontainers: not installed (pip install 'trackschema[dev]')")
        return None
    image = image or os.environ.get("TRACKSCHEMA_POSTGRES_IMAGE", DEFAULT_IMAGE)
    if persistent:
        # The reaper would remove the container when this process exits.
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    try:
        container = cls(image, driver=None)
    except Exception as exc:  # noqa: BLE001 - DockerException when no engine answers
        if type(exc).__name__ != "DockerException" and not _is_docker_exception(exc):
            raise
        tried.append(f"testcontainers: no Docker engine answers ({_first_line(exc)})")
        return None
    if extra_conf:
        container.with_command(" ".join(f"-c {key}={value.strip(chr(39))}" for key, value in extra_conf.items()))
    try:
        container.start()
    except Exception as exc:  # noqa: BLE001 - e.g. image pull refused on a closed network
        tried.append(f"testcontainers: container did not start ({_first_line(exc)})")
        try:
            container.stop()
        except Exception:  # noqa: BLE001
            pass
        return None
    url = container.get_connection_url(driver=None)
    server = PostgresServer(url=url, kind="container", detail=f"container {image}", _stop=container.stop, handle=container)
    if not persistent:
        atexit.register(server.stop)
    return server


def _is_docker_exception(exc: BaseException) -> bool:
    try:
        from docker.errors import DockerException  # type: ignore[import-untyped]
    except ImportError:
        return False
    return isinstance(exc, DockerException)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# --- local binaries -------------------------------------------------------------------


def _has_server_binaries(path: Path) -> bool:
    return all((path / name).is_file() and os.access(path / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def candidate_bindirs() -> Iterable[Path]:
    """Where server binaries may be, best first: PATH, pg_config, Debian's versioned dirs."""
    initdb = shutil.which("initdb")
    if initdb:
        yield Path(initdb).resolve().parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            yield Path(out.stdout.strip())
        except (subprocess.SubprocessError, OSError):
            pass
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True)
    yield from versions


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def find_pg_bindir(*, version: str | None = None) -> Path | None:
    """The first directory with initdb, pg_ctl and postgres (of major `version`, when
    given), or None."""
    override = os.environ.get("TRACKSCHEMA_PG_BINDIR")
    candidates = [Path(override)] if override else candidate_bindirs()
    for path in candidates:
        if _has_server_binaries(path) and (version is None or bindir_version(path) == version):
            return path
    return None


def bindir_version(path: Path) -> str | None:
    """The major version of the server binaries in `path` (`postgres --version`), or None."""
    try:
        out = subprocess.run([str(path / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return match.group(1) if match else None


def memory_dir(minimum_free: int = MEMORY_MIN_FREE) -> Path | None:
    """`/dev/shm` when it is a writable tmpfs with `minimum_free` bytes free, else None."""
    try:
        with open("/proc/mounts") as mounts:
            on_tmpfs = any(line.split()[1:3] == [str(MEMORY_DIR), "tmpfs"] for line in mounts)
        stat = os.statvfs(MEMORY_DIR)
    except OSError:
        return None
    if not on_tmpfs or not os.access(MEMORY_DIR, os.W_OK | os.X_OK) or stat.f_bavail * stat.f_frsize < minimum_free:
        return None
    return MEMORY_DIR


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCluster:
    """A private cluster: `initdb`, `pg_ctl start` on a free port, `pg_ctl stop` and removal.

    Runs the server binaries as the `postgres` system user when this process is root.
    The superuser is `postgres` with trust authentication on loopback only.
    """

    def __init__(self, bindir: Path, *, base_dir: Path | None = None, port: int | None = None, extra_conf: dict[str, str] | None = None,
                 in_memory: bool = False, fixed_port: bool = False) -> None:
        self.bindir = bindir
        self.run_as = _server_user()
        self.base_dir = base_dir
        self.port = port or free_port()
        self.conf = {**THROWAWAY_CONF, **(extra_conf or {})}
        self.in_memory = in_memory  # a fresh base_dir goes under `memory_dir()` when there is one
        # A fixed port is never traded for another when the server cannot start on it (a
        # Citus node: the coordinator's metadata names its port).
        self.fixed_port = fixed_port

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "sock"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def describe(self) -> str:
        user = f" as {self.run_as.pw_name}" if self.run_as else ""
        return f"local cluster from {self.bindir}{user}, data in {self.data_dir}, port {self.port}"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.run_as:
            kwargs.update(user=self.run_as.pw_uid, group=self.run_as.pw_gid, extra_groups=[])
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        if self.run_as:
            env["HOME"] = str(self.base_dir)
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=self.base_dir, env=env, **kwargs)  # type: ignore[call-overload]
        if result.returncode != 0:
            raise ProvisioningError(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[-500:]}")
        return result

    def _make_dir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.run_as:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def start(self) -> None:
        """initdb (unless the data directory exists) and start; tries three ports (only its
        own with `fixed_port`).

        Under root, a `base_dir` the `postgres` user cannot reach (say below /root, which
        is mode 0700) is replaced by a fresh directory under the system temp dir.
        """
        if self.base_dir is not None and self.run_as and not _reachable_by(self.base_dir, self.run_as):
            self.base_dir = None
        if self.base_dir is None:
            memory = memory_dir() if self.in_memory else None
            self.base_dir = Path(tempfile.mkdtemp(prefix="trackschema-pg-", dir=memory))
        self._make_dir(self.base_dir)
        self._make_dir(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._make_dir(self.data_dir)
            self._run(str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        attempts = 1 if self.fixed_port else 3
        for attempt in range(attempts):
            self._write_conf()
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.base_dir / "server.log"), "-w", "-t", "60", "start")
                return
            except ProvisioningError:
                if attempt == attempts - 1:
                    log = (self.base_dir / "server.log")
                    tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
                    raise ProvisioningError(f"PostgreSQL did not start from {self.bindir}: {tail.strip()}") from None
                self.port = free_port()

    def _write_conf(self) -> None:
        conf = {
            **self.conf,
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
        }
        lines = [f"{key} = {_conf_value(value)}" for key, value in conf.items()]
        path = self.data_dir / "postgresql.auto.conf"
        path.write_text("# written by trackschema.provision\n" + "\n".join(lines) + "\n")
        if self.run_as:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop", timeout=60)
            except (ProvisioningError, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", timeout=60)

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            if self.base_dir and self.base_dir.exists():
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def to_state(self) -> dict[str, object]:
        return {"bindir": str(self.bindir), "base_dir": str(self.base_dir), "port": self.port, "url": self.url}

    @classmethod
    def from_state(cls, state: dict[str, object], *, extra_conf: dict[str, str] | None = None, fixed_port: bool = False) -> "LocalCluster":
        return cls(Path(str(state["bindir"])), base_dir=Path(str(state["base_dir"])), port=int(state["port"]),  # type: ignore[arg-type]
                   extra_conf=extra_conf, fixed_port=fixed_port)

    @property
    def running(self) -> bool:
        """Whether the server's postmaster.pid is there (pg_ctl's own test)."""
        return self.base_dir is not None and (self.data_dir / "postmaster.pid").exists()

    def failure_reason(self, error: BaseException) -> str:
        """Why the server did not start, in one line: the last FATAL (or PANIC, ERROR) line
        of its log, after the first "could not ..." the same process logged before it
        (`could not bind IPv4 address "127.0.0.1": Address already in use; could not create
        any TCP/IP sockets`); else the first line of `error`."""
        log = self.base_dir / "server.log" if self.base_dir else None
        text = log.read_text(errors="replace") if log and log.exists() else ""
        entries = [found.groups() for line in text.splitlines()
                   if (found := re.search(r"\[(\d+)\]\s+(LOG|WARNING|ERROR|FATAL|PANIC):\s+(.*)", line))]
        for levels in (("FATAL", "PANIC"), ("ERROR",)):
            last = next((i for i in range(len(entries) - 1, -1, -1) if entries[i][1] in levels), None)
            if last is not None:
                pid, _, message = entries[last]
                cause = next((m for p, level, m in entries[:last] if p == pid and level in ("LOG", "WARNING") and m.startswith("could not")), None)
                return f"{cause.strip()}; {message.strip()}" if cause else message.strip()
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return lines[0] if lines else type(error).__name__


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` can traverse every existing ancestor of `path` (mode bits only)."""
    import grp

    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        st = directory.stat()
        if st.st_uid == user.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _conf_value(value: str) -> str:
    return value if value.startswith("'") or re.fullmatch(r"[\w.]+", value) else f"'{value}'"


def _server_user() -> pwd.struct_passwd | None:
    """The account to run the server as: None unless we are root, then `postgres`."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("TRACKSCHEMA_PG_USER", "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ProvisioningError(
            f"PostgreSQL refuses to run as root and there is no {name!r} system user: "
            f"create one (useradd --system --home /var/lib/postgresql {name}) or run as a normal user"
        ) from None


def server_version(url: str) -> str:
    """`SHOW server_version` of a reachable server (for display)."""
    from trackschema.runtime.db import connect

    with connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def require_version(server: PostgresServer, version: str | None) -> None:
    """Refuse (`ProvisioningError`, one line) a server whose major version is not `version`;
    nothing to check without one. For a server given by URL: a started one has it already."""
    if not version:
        return
    from trackschema.runtime.db import connect
    from trackschema.runtime.settings import mask_password

    with connect(server.url) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    major = str(row[0]) if row else "?"
    if major != version:
        raise ProvisioningError(f"the server at {mask_password(server.url)} runs PostgreSQL {major}, not {version}: "
                                f"give a PostgreSQL {version} server, or leave out the version")


def read_state(path: Path) -> dict[str, object] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --- Citus ----------------------------------------------------------------------------

# What every Citus node adds to THROWAWAY_CONF: Citus preloaded; logical WAL, which shard
# moves and the rebalancer use by default; smaller buffers, as several servers share a machine.
CITUS_CONF = {"shared_preload_libraries": "citus", "wal_level": "logical", "shared_buffers": "128MB"}
MAX_CITUS_WORKERS = 8
CITUS_HOST = "127.0.0.1"  # how the nodes name each other in the Citus metadata
CITUS_INSTALL_HINT = ("install the Citus extension into that PostgreSQL (in a trackschema checkout: "
                      "run ../shared/citus/install as root, or ./run, which does it when it may)")


def extension_dirs(bindir: Path) -> list[Path]:
    """Where the server in `bindir` may find extension control files, likeliest first:
    `pg_config --sharedir` beside it, Debian's `<prefix>/share/postgresql/<major>` for
    `<prefix>/lib/postgresql/<major>/bin`, then `<prefix>/share(/postgresql)`."""
    found: list[Path] = []
    pg_config = bindir / "pg_config"
    if pg_config.is_file() and os.access(pg_config, os.X_OK):
        try:
            out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
            if out:
                found.append(Path(out) / "extension")
        except (subprocess.SubprocessError, OSError):
            pass
    if len(bindir.parents) >= 4 and bindir.parents[1].name == "postgresql":
        found.append(bindir.parents[3] / "share" / "postgresql" / bindir.parent.name / "extension")
    found += [bindir.parent / "share" / "extension", bindir.parent / "share" / "postgresql" / "extension"]
    return list(dict.fromkeys(found))


def citus_available(bindir: Path) -> bool:
    """Whether the server in `bindir` has the Citus extension (`citus.control`)."""
    return any((directory / "citus.control").is_file() for directory in extension_dirs(bindir))


def server_release(bindir: Path) -> str | None:
    """The full release of the server binaries in `bindir` (`15.20`), or None."""
    try:
        out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+([\d.]+)", out)
    return match.group(1) if match else None


def find_citus_bindir() -> Path:
    """The local server binaries a Citus cluster starts from: the first candidate (as for
    `find_pg_bindir`) with Citus installed; `ProvisioningError` saying what to install."""
    override = os.environ.get("TRACKSCHEMA_PG_BINDIR")
    candidates = [Path(override)] if override else list(dict.fromkeys(candidate_bindirs()))
    servers = [path for path in candidates if _has_server_binaries(path)]
    for path in servers:
        if citus_available(path):
            return path
    if not servers:
        raise ProvisioningError("a Citus cluster needs local PostgreSQL server binaries (no initdb/pg_ctl on PATH, from pg_config, "
                                "or in /usr/lib/postgresql/*/bin): install PostgreSQL 15 (apt-get install postgresql-15), then Citus")
    found = ", ".join(f"PostgreSQL {server_release(path) or '?'} in {path}" for path in servers)
    raise ProvisioningError(f"Citus is not installed ({found}: no citus.control): {CITUS_INSTALL_HINT}")


class CitusCluster:
    """A local Citus cluster: a coordinator and `workers` workers (1 to 8), each a
    `LocalCluster` with Citus preloaded, on its own loopback port (started as the
    `postgres` system user under root, like every local cluster).

    `start()` starts every node at once and makes the coordinator's `postgres` database a
    Citus database (`join_database`); `url` is the coordinator's. A node that cannot start
    or join stops the whole cluster and raises `ProvisioningError`, one line naming the
    node (`Citus worker2 did not start on 127.0.0.1:5433: could not bind ...`). Ports given
    as `ports` are kept (a port taken is that error); otherwise free ones are chosen.
    `destroy()` stops every node and deletes the cluster's directory.

    Citus keeps its metadata (nodes, distributed tables) per database, and Citus 13.2 does
    not create a database on the workers (CREATE DATABASE propagation,
    `citus.enable_create_database_propagation`, is off by default; when on it takes only
    TEMPLATE template1, and the extension is still created per node): `create_database`
    makes one on every node and joins it, `drop_database` drops it everywhere.
    """

    def __init__(self, bindir: Path, workers: int = 2, *, base_dir: Path | None = None, ports: Sequence[int] | None = None,
                 in_memory: bool = False, extra_conf: dict[str, str] | None = None) -> None:
        if not 1 <= workers <= MAX_CITUS_WORKERS:
            raise ProvisioningError(f"a Citus cluster has 1 to {MAX_CITUS_WORKERS} workers, not {workers}")
        names = ["coordinator", *(f"worker{i}" for i in range(1, workers + 1))]
        if ports is not None and len(ports) != len(names):
            raise ProvisioningError(f"{len(ports)} port(s) for {len(names)} Citus nodes")
        self.bindir, self.base_dir, self.in_memory = bindir, base_dir, in_memory
        self.conf = {**CITUS_CONF, **(extra_conf or {})}
        self.version: str | None = None  # `citus_version()`'s first words once started
        self.nodes: dict[str, LocalCluster] = {
            name: LocalCluster(bindir, port=ports[index] if ports is not None else None, extra_conf=self.conf,
                               fixed_port=ports is not None)
            for index, name in enumerate(names)
        }

    @property
    def coordinator(self) -> LocalCluster:
        return self.nodes["coordinator"]

    @property
    def workers(self) -> dict[str, LocalCluster]:
        return {name: node for name, node in self.nodes.items() if name != "coordinator"}

    @property
    def url(self) -> str:
        """The coordinator's `postgres` database: where applications and migrations connect."""
        return self.coordinator.url

    def node_url(self, name: str, database: str = "postgres") -> str:
        from trackschema.runtime import scratch

        return scratch.database_url(self.nodes[name].url, database)

    def describe(self) -> str:
        user = f" as {self.coordinator.run_as.pw_name}" if self.coordinator.run_as else ""
        workers = ", ".join(f"{name} {node.port}" for name, node in self.workers.items())
        return (f"{self.version or 'Citus'} cluster from {self.bindir}{user}: coordinator on port {self.coordinator.port}, "
                f"{len(self.workers)} worker(s) ({workers}), data in {self.base_dir}")

    def describe_nodes(self) -> list[dict[str, object]]:
        return [{"name": name, "role": "coordinator" if name == "coordinator" else "worker", "host": CITUS_HOST,
                 "port": node.port, "url": node.url, "directory": str(node.base_dir)} for name, node in self.nodes.items()]

    # --- lifecycle ---

    def start(self) -> None:
        """Start every node, then join the `postgres` database (class docstring); on any
        failure every node is stopped and removed before the error is raised."""
        try:
            self._prepare_dirs()
            self._each(self._start_node)
            self.join_database("postgres")
        except BaseException:
            self.destroy()
            raise

    def ensure_running(self) -> None:
        """Start the nodes that are not running (after a reboot), on their recorded ports; a
        node that cannot start stops the others and is named in the error."""
        stopped = [name for name, node in self.nodes.items() if not node.running]
        if not stopped:
            return
        try:
            self._each(self._start_node, stopped)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node (each one, whatever happens to another); data stays."""
        self._each(lambda name, node: node.stop() if node.base_dir is not None else None)

    def destroy(self) -> None:
        """Stop every node and delete the cluster's directory; idempotent."""
        try:
            self._each(lambda name, node: node.destroy() if node.base_dir is not None else None)
        finally:
            if self.base_dir is not None and self.base_dir.exists():
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def _prepare_dirs(self) -> None:
        """One directory for the cluster, a subdirectory per node. Under root, a `base_dir`
        the `postgres` user cannot reach becomes a fresh one in the temp dir (as for
        `LocalCluster`)."""
        run_as = self.coordinator.run_as
        if self.base_dir is not None and run_as and not _reachable_by(self.base_dir, run_as):
            self.base_dir = None
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="trackschema-citus-", dir=memory_dir() if self.in_memory else None))
            self.base_dir.chmod(0o755)  # the nodes' own directories below are 0700, owned by the server user
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for name, node in self.nodes.items():
            node.base_dir = self.base_dir / name

    def _start_node(self, name: str, node: LocalCluster) -> None:
        try:
            node.start()
        except (ProvisioningError, subprocess.SubprocessError, OSError) as exc:
            reason = node.failure_reason(exc)
            raise ProvisioningError(f"Citus {name} did not start on {CITUS_HOST}:{node.port}: {reason}{self._hint(reason)}") from None

    def _hint(self, reason: str) -> str:
        if "undefined symbol" in reason:
            release = server_release(self.bindir) or "?"
            return (f" (this Citus build is for another PostgreSQL release than the {release} in {self.bindir}: upgrade the "
                    f"server, e.g. apt-get update && apt-get install postgresql-15, or build Citus against it)")
        if 'could not access file "citus"' in reason:
            return f" ({CITUS_INSTALL_HINT})"
        return ""

    def _each(self, action: Callable[[str, LocalCluster], None], names: Iterable[str] | None = None) -> None:
        """`action(name, node)` on the nodes (all by default) at once; once every call has
        ended, the first failure in node order is raised."""
        chosen = list(self.nodes if names is None else names)
        errors: list[BaseException | None] = []
        try:
            with ThreadPoolExecutor(max_workers=max(len(chosen), 1)) as pool:
                futures = [pool.submit(action, name, self.nodes[name]) for name in chosen]
            errors = [future.exception() for future in futures]
        except RuntimeError:  # no new threads at interpreter exit (the atexit clean-up): one node after another
            for name in chosen:
                try:
                    action(name, self.nodes[name])
                    errors.append(None)
                except Exception as exc:  # noqa: BLE001 - every node gets its turn; raised below
                    errors.append(exc)
        for error in errors:
            if error is not None:
                raise error

    # --- databases ---

    def join_database(self, database: str) -> None:
        """Make `database`, present on every node, a Citus database: `CREATE EXTENSION citus`
        on every node, then, on the coordinator, `citus_set_coordinator_host` and
        `citus_add_node` for each worker. Idempotent."""
        import psycopg

        def extension(name: str, node: LocalCluster) -> None:
            try:
                with psycopg.connect(self.node_url(name, database), autocommit=True, connect_timeout=10) as conn:
                    conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
            except psycopg.Error as exc:
                raise ProvisioningError(f"Citus {name} ({CITUS_HOST}:{node.port}): CREATE EXTENSION citus failed in database "
                                        f"{database}: {_psycopg_reason(exc)}") from None

        self._each(extension)
        try:
            with psycopg.connect(self.node_url("coordinator", database), autocommit=True, connect_timeout=10) as conn:
                conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (CITUS_HOST, self.coordinator.port))
                for name, worker in self.workers.items():
                    try:
                        conn.execute("SELECT citus_add_node(%s, %s)", (CITUS_HOST, worker.port))
                    except psycopg.Error as exc:
                        raise ProvisioningError(f"Citus coordinator could not add {name} ({CITUS_HOST}:{worker.port}) in database "
                                                f"{database}: {_psycopg_reason(exc)}") from None
                row = conn.execute("SELECT citus_version()").fetchone()
        except psycopg.Error as exc:
            raise ProvisioningError(f"Citus coordinator ({CITUS_HOST}:{self.coordinator.port}) in database {database}: "
                                    f"{_psycopg_reason(exc)}") from None
        if row:
            self.version = " ".join(str(row[0]).split()[:2])  # "Citus 13.2.2"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` on every node (a leftover of that name is dropped first),
        then `join_database`; returns the coordinator's URL for it. When anything fails it
        is dropped again everywhere."""
        from trackschema.runtime import scratch

        def make(node_name: str, node: LocalCluster) -> None:
            with scratch.admin(node.url) as conn:
                scratch.drop(conn, name)
                scratch.create(conn, name)

        try:
            self._each(make)
            self.join_database(name)
        except BaseException:
            try:
                self.drop_database(name)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        return self.node_url("coordinator", name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE IF EXISTS `name` WITH (FORCE) on every node."""
        from trackschema.runtime import scratch

        def drop(node_name: str, node: LocalCluster) -> None:
            with scratch.admin(node.url) as conn:
                scratch.drop(conn, name)

        self._each(drop)

    def add_worker(self, databases: Sequence[str] = ("postgres",)) -> str:
        """Start one more worker (`worker<N+1>`, a free port, the cluster's settings and
        directory) and add it to each of `databases` (every one must already be a Citus
        database on the other nodes): CREATE DATABASE and CREATE EXTENSION citus on the new
        node, then `citus_add_node` on the coordinator. Citus copies the reference tables and
        distributed objects to it, but no shard: a rebalance moves shards there
        (docs/citus.md#adding-a-worker). Returns the new node's name. A worker that cannot
        start or join is stopped, removed and named in a one-line ProvisioningError."""
        import psycopg

        from trackschema.runtime import scratch

        if len(self.workers) >= MAX_CITUS_WORKERS:
            raise ProvisioningError(f"a Citus cluster has at most {MAX_CITUS_WORKERS} workers")
        if self.base_dir is None:
            raise ProvisioningError("start the Citus cluster before adding a worker")
        name = f"worker{len(self.workers) + 1}"
        node = LocalCluster(self.bindir, base_dir=self.base_dir / name, extra_conf=self.conf)
        self.nodes[name] = node
        try:
            self._start_node(name, node)
            for database in databases:
                if database != "postgres":
                    with scratch.admin(node.url) as admin:
                        scratch.create(admin, database)
                try:
                    with psycopg.connect(self.node_url(name, database), autocommit=True, connect_timeout=10) as conn:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
                    with psycopg.connect(self.node_url("coordinator", database), autocommit=True, connect_timeout=10) as conn:
                        conn.execute("SELECT citus_add_node(%s, %s)", (CITUS_HOST, node.port))
                except psycopg.Error as exc:
                    raise ProvisioningError(f"Citus {name} ({CITUS_HOST}:{node.port}) could not join database {database}: "
                                            f"{_psycopg_reason(exc)}") from None
        except BaseException:
            del self.nodes[name]
            node.destroy()
            raise
        return name

    # --- state (the sandbox) ---

    def to_state(self) -> dict[str, object]:
        return {"bindir": str(self.bindir), "base_dir": str(self.base_dir), "version": self.version,
                "nodes": {name: node.to_state() for name, node in self.nodes.items()}}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> "CitusCluster":
        nodes: dict[str, dict[str, object]] = state["nodes"]  # type: ignore[assignment]
        cluster = cls(Path(str(state["bindir"])), len(nodes) - 1, base_dir=Path(str(state["base_dir"])),
                      ports=[int(node["port"]) for node in nodes.values()])  # type: ignore[call-overload]
        cluster.nodes = {name: LocalCluster.from_state(node, extra_conf=cluster.conf, fixed_port=True) for name, node in nodes.items()}
        cluster.version = state.get("version")  # type: ignore[assignment]
        return cluster


def _psycopg_reason(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def start_citus(workers: int = 2, *, base_dir: Path | None = None, persistent: bool = False, fast: bool = False,
                bindir: Path | None = None) -> CitusCluster:
    """A started `CitusCluster` of `workers` workers from the local binaries with Citus
    (`find_citus_bindir`, unless `bindir`). Removed at interpreter exit unless `persistent`
    (the sandbox); `fast` keeps its data in memory, as `provision(fast=True)` does."""
    in_memory = fast and base_dir is None and not persistent
    cluster = CitusCluster(bindir or find_citus_bindir(), workers, base_dir=base_dir, in_memory=in_memory,
                           extra_conf=MEMORY_CONF if in_memory else None)
    cluster.start()
    if not persistent:
        atexit.register(cluster.destroy)
    return cluster
