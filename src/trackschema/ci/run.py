"""`trackschema ci`: get a throwaway server, run the steps, return what each found.

`run(options)` provisions the server as the tests do (`--server-url`, else a
testcontainers `PostgresContainer` where a Docker engine answers, else a private cluster
from the local binaries; `--postgres` picks the major version), makes its own databases
on it, runs the steps of `trackschema.ci.steps` in order, drops its databases, stops a
server it started, writes the JUnit report when asked, and returns a `CiResult`. It never
touches an application database: with `--server-url` it only creates and drops databases
named `trackschema_ci_<hex>_*` there (the role needs CREATEDB).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from trackschema.ci import junit, steps
from trackschema.ci.options import STEPS, CiOptions
from trackschema.runtime import provision as provisioning
from trackschema.runtime import scratch
from trackschema.runtime.settings import libpq_url, mask_password


@dataclass
class CiResult:
    """The server the run used and every step's result, in order."""

    server: str  # how it was provisioned (URL masked)
    server_kind: str  # url | container | local
    postgres_version: str
    provision_seconds: float
    steps: list[steps.StepResult] = field(default_factory=list)
    seconds: float = 0.0
    junit_xml: str | None = None
    databases: list[str] = field(default_factory=list)  # made on the server by the steps, dropped at the end

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[steps.StepResult]:
        return [s for s in self.steps if s.failed]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "failed": [s.name for s in self.failed], "server": self.server, "server_kind": self.server_kind,
                "postgres_version": self.postgres_version, "provision_seconds": round(self.provision_seconds, 3),
                "seconds": round(self.seconds, 3), "steps": [s.to_dict() for s in self.steps], "junit_xml": self.junit_xml,
                "databases": self.databases}


def start_server(options: CiOptions) -> provisioning.PostgresServer:
    """The server the options ask for, checked: the right major version, and a role that
    may create databases. Raises `ProvisioningError` (exit 2, one line; `ScratchRefused`
    for the role) otherwise."""
    server = provisioning.provision(options.server_url, mode=options.provision, version=options.postgres, image=options.image, fast=True)
    try:
        provisioning.require_version(server, options.postgres)
        scratch.require_createdb(server.url, what="ci makes its own throwaway databases there",
                                 hint="give --server-url of a server where it may (CREATEDB)")
    except BaseException:
        server.stop()
        raise
    return server


def run(options: CiOptions | None = None, *, on_step: Callable[[steps.StepResult], None] | None = None, **given: Any) -> CiResult:
    """Run every step the options do not skip; `on_step` is told of each result as it
    comes (for a live display). The options are `options`, or built from `given`."""
    options = options if options is not None else CiOptions(**given)
    started = time.monotonic()
    server = start_server(options)
    try:
        with scratch.admin(server.url) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        result = CiResult(_describe(server), server.kind, version, time.monotonic() - started)
        workspace = steps.Workspace(server.url, options)
        try:
            for name in STEPS:
                if not options.runs(name):
                    continue
                try:
                    step = steps.STEP_FUNCTIONS[name](workspace)
                except psycopg.OperationalError as exc:  # e.g. the server went away between steps
                    step = steps.StepResult(name, steps.FAILED, 0.0, str(exc).strip().splitlines()[0] if str(exc).strip() else "connection lost")
                result.steps.append(step)
                if on_step is not None:
                    on_step(step)
        finally:
            result.databases = list(workspace.made)
            workspace.cleanup()
    finally:
        server.stop()
    result.seconds = time.monotonic() - started
    if options.junit_xml:
        junit.write(result, options.junit_xml)
        result.junit_xml = options.junit_xml
    return result


def _describe(server: provisioning.PostgresServer) -> str:
    if server.kind == "url":
        return f"server {mask_password(libpq_url(server.url))}"
    return server.detail
