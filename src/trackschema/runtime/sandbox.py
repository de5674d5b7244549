"""A throwaway PostgreSQL that outlives one command: `trackschema sandbox start|url|stop`.

Its state (how to reach and stop it) is a JSON file in the sandbox directory,
`$TRACKSCHEMA_SANDBOX_DIR` or `~/.trackschema/sandbox`. A local cluster keeps its data
there too; `stop` stops the server and deletes the directory.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from trackschema.errors import TrackschemaError
from trackschema.runtime.provision import LocalCluster, provision, read_state


@dataclass(frozen=True)
class SandboxInfo:
    url: str
    kind: str
    detail: str
    directory: str
    created: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def sandbox_dir() -> Path:
    return Path(os.environ.get("TRACKSCHEMA_SANDBOX_DIR") or Path.home() / ".trackschema" / "sandbox")


def _state_file() -> Path:
    return sandbox_dir() / "sandbox.json"


def start() -> SandboxInfo:
    """Start the sandbox, or report the running one (starting twice is harmless)."""
    existing = current()
    if existing:
        return existing
    directory = sandbox_dir()
    directory.mkdir(parents=True, exist_ok=True)
    server = provision(None, base_dir=directory / "cluster", persistent=True)
    state: dict[str, object] = {"url": server.url, "kind": server.kind, "detail": server.detail}
    if isinstance(server.handle, LocalCluster):
        state["cluster"] = server.handle.to_state()
    elif server.kind == "container":
        wrapped = server.handle.get_wrapped_container()  # type: ignore[union-attr]
        state["container_id"] = wrapped.id
    _state_file().write_text(json.dumps(state, indent=2))
    return SandboxInfo(server.url, server.kind, server.detail, str(directory), created=True)


def current() -> SandboxInfo | None:
    """The running sandbox, or None (a stale state file left by a reboot is restarted)."""
    state = read_state(_state_file())
    if not state:
        return None
    if "cluster" in state:
        cluster = LocalCluster.from_state(state["cluster"])  # type: ignore[arg-type]
        if not (cluster.data_dir / "postmaster.pid").exists():
            cluster.start()
    return SandboxInfo(str(state["url"]), str(state["kind"]), str(state["detail"]), str(sandbox_dir()), created=False)


def url() -> str:
    info = current()
    if info is None:
        raise TrackschemaError("no sandbox is running: start one with `trackschema sandbox start`")
    return info.url


def stop() -> bool:
    """Stop the sandbox and delete its data; False when none was running."""
    state = read_state(_state_file())
    if not state:
        return False
    if "cluster" in state:
        LocalCluster.from_state(state["cluster"]).destroy()  # type: ignore[arg-type]
    elif state.get("container_id"):
        import docker  # type: ignore[import-untyped]

        docker.from_env().containers.get(state["container_id"]).remove(force=True)
    shutil.rmtree(sandbox_dir(), ignore_errors=True)
    return True
