"""A throwaway PostgreSQL that outlives one command: `trackschema sandbox start|url|stop`.

Its state (how to reach and stop it) is a JSON file in the sandbox directory,
`$TRACKSCHEMA_SANDBOX_DIR` or `~/.trackschema/sandbox`. A local cluster keeps its data
there too; `stop` stops the server and deletes the directory.

`start(SandboxOptions(citus=N))` (`sandbox start --citus N`) makes it a local Citus
cluster instead: a coordinator and N workers (`provision.CitusCluster`), every node
recorded in the state file; `url` is the coordinator's, `stop` stops and removes every
node.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from trackschema.errors import TrackschemaError
from trackschema.operations.inputs import Count
from trackschema.operations.options import Options, option
from trackschema.runtime.provision import (
    MAX_CITUS_WORKERS,
    CitusCluster,
    LocalCluster,
    provision,
    read_state,
    start_citus,
)


@dataclass(frozen=True)
class SandboxOptions(Options):
    """What `sandbox start` starts."""

    operation: ClassVar[str] = "sandbox start"
    citus: int | None = option(Count(1, MAX_CITUS_WORKERS), None,
                               f"A local Citus cluster: a coordinator and this many workers (1-{MAX_CITUS_WORKERS}), each on its own loopback port.")


@dataclass(frozen=True)
class SandboxInfo:
    url: str
    kind: str  # "local" | "container" | "citus"
    detail: str
    directory: str
    created: bool
    nodes: list[dict[str, object]] = field(default_factory=list)  # a Citus sandbox's coordinator and workers

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def sandbox_dir() -> Path:
    return Path(os.environ.get("TRACKSCHEMA_SANDBOX_DIR") or Path.home() / ".trackschema" / "sandbox")


def _state_file() -> Path:
    return sandbox_dir() / "sandbox.json"


def start(options: SandboxOptions | None = None) -> SandboxInfo:
    """Start the sandbox, or report the running one (starting twice is harmless). With
    `citus`, a running sandbox must be a Citus cluster of that many workers, else this
    refuses (stop it first); without, any running sandbox is reported."""
    options = options or SandboxOptions()
    existing = current()
    if existing:
        workers = sum(1 for node in existing.nodes if node["role"] == "worker")
        if options.citus is not None and (existing.kind != "citus" or workers != options.citus):
            running = f"a Citus cluster with {workers} worker(s)" if existing.kind == "citus" else f"a plain PostgreSQL ({existing.kind})"
            raise TrackschemaError(f"a sandbox is already running ({running}, {existing.url}): stop it first with "
                                   f"`trackschema sandbox stop`, then start the Citus cluster with {options.citus} worker(s)")
        return existing
    directory = sandbox_dir()
    made = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    try:
        if options.citus is not None:
            return _start_citus(directory, options.citus)
        server = provision(None, base_dir=directory / "cluster", persistent=True)
    except BaseException:
        if made:  # nothing was started: no state file, and no directory it made
            shutil.rmtree(directory, ignore_errors=True)
        raise
    state: dict[str, object] = {"url": server.url, "kind": server.kind, "detail": server.detail}
    if isinstance(server.handle, LocalCluster):
        state["cluster"] = server.handle.to_state()
    elif server.kind == "container":
        wrapped = server.handle.get_wrapped_container()  # type: ignore[union-attr]
        state["container_id"] = wrapped.id
    _state_file().write_text(json.dumps(state, indent=2))
    return SandboxInfo(server.url, server.kind, server.detail, str(directory), created=True)


def _start_citus(directory: Path, workers: int) -> SandboxInfo:
    cluster = start_citus(workers, base_dir=directory / "citus", persistent=True)
    try:
        state = {"url": cluster.url, "kind": "citus", "detail": cluster.describe(), "citus": cluster.to_state()}
        _state_file().write_text(json.dumps(state, indent=2))
    except BaseException:
        cluster.destroy()
        raise
    return SandboxInfo(cluster.url, "citus", cluster.describe(), str(directory), created=True, nodes=cluster.describe_nodes())


def current() -> SandboxInfo | None:
    """The running sandbox, or None (a stale state file left by a reboot is restarted)."""
    state = read_state(_state_file())
    if not state:
        return None
    nodes: list[dict[str, object]] = []
    if "cluster" in state:
        cluster = LocalCluster.from_state(state["cluster"])  # type: ignore[arg-type]
        if not (cluster.data_dir / "postmaster.pid").exists():
            cluster.start()
    elif "citus" in state:
        citus = CitusCluster.from_state(state["citus"])  # type: ignore[arg-type]
        citus.ensure_running()
        nodes = citus.describe_nodes()
    return SandboxInfo(str(state["url"]), str(state["kind"]), str(state["detail"]), str(sandbox_dir()), created=False, nodes=nodes)


def url() -> str:
    info = current()
    if info is None:
        raise TrackschemaError("no sandbox is running: start one with `trackschema sandbox start`")
    return info.url


def stop() -> bool:
    """Stop the sandbox (every node of a Citus one) and delete its data; False when none
    was running."""
    state = read_state(_state_file())
    if not state:
        return False
    if "cluster" in state:
        LocalCluster.from_state(state["cluster"]).destroy()  # type: ignore[arg-type]
    elif "citus" in state:
        CitusCluster.from_state(state["citus"]).destroy()  # type: ignore[arg-type]
    elif state.get("container_id"):
        import docker  # type: ignore[import-untyped]

        docker.from_env().containers.get(state["container_id"]).remove(force=True)
    shutil.rmtree(sandbox_dir(), ignore_errors=True)
    return True
