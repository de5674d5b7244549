"""`trackschema ci` on the session's server (`--server-url`, so no second server starts):
the project's own history passes every step; throwaway revisions in a scratch folder
(chained onto head with `--versions`) that break the round trip fail it, naming the step
and the difference. Checking one revision on its own (`--revisions`) keeps those fast."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from psycopg import sql

from tests import revisions
from tests.conftest import run_cli
from trackschema.ci import run as ci_run
from trackschema.ci import steps
from trackschema.ci.options import STEPS, CiOptions, known_revisions
from trackschema.errors import ProvisioningError
from trackschema.migrations import runner as migrate
from trackschema.operations.inputs import InputError
from trackschema.runtime import provision as provisioning
from trackschema.runtime import scratch
from trackschema.runtime.provision import PostgresServer
from trackschema.runtime.settings import libpq_url

HEAD = migrate.heads()[0].revision
SCRATCH = "9001_ci_scratch"


def scratch_revision(folder: Path, upgrade: str, downgrade: str) -> str:
    """A throwaway revision chained onto head, alone in its versions folder."""
    return revisions.scratch_revision(folder, SCRATCH, upgrade=upgrade, downgrade=downgrade, doc="A throwaway revision for the ci tests.")


@pytest.mark.slow
def test_the_project_history_passes_every_step(pg_server: PostgresServer, tmp_path: Path) -> None:
    report = tmp_path / "ci.xml"
    done = run_cli("ci", "--server-url", pg_server.url, "--json", "--junit-xml", str(report), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["ok"] and result["failed"] == [] and result["server_kind"] == "url"
    assert [s["name"] for s in result["steps"]] == list(STEPS) and {s["status"] for s in result["steps"]} == {"passed"}
    by_name = {s["name"]: s for s in result["steps"]}
    revisions = len(known_revisions())
    assert by_name["upgrade"]["detail"].startswith(f"{revisions} revisions applied")
    assert by_name["revisions"]["detail"].startswith(f"{revisions} revisions:")
    assert "no unjustified finding" in by_name["lint"]["detail"]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "5" and suite.get("failures") == "0"
    assert [case.get("name") for case in suite.iter("testcase")] == [steps.TITLES[name] for name in STEPS]
    assert len(result["databases"]) == 2 and all(name.startswith("trackschema_ci_") for name in result["databases"])
    with scratch.admin(pg_server.url) as conn:  # dropped again
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (result["databases"],)).fetchone() == (0,)


def test_a_downgrade_that_forgets_its_index_fails_naming_the_step_and_the_index(pg_server: PostgresServer, tmp_path: Path) -> None:
    """The forgotten index goes when base drops its table, so the whole round trip cannot
    see it; checking the revision on its own does (and squawk flags the non-concurrent build)."""
    versions = scratch_revision(tmp_path / "versions", "CREATE INDEX IF NOT EXISTS idx_contacts_ci_scratch ON contacts (phone)",
                                "SELECT 1")  # forgets DROP INDEX idx_contacts_ci_scratch
    report = tmp_path / "ci.xml"
    done = run_cli("ci", "--server-url", pg_server.url, "--versions", versions, "--revisions", SCRATCH, "--json",
                   "--junit-xml", str(report), timeout=300)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ci failed: each revision up/down/up" in done.stderr and "\n" not in done.stderr.strip()
    result = json.loads(done.stdout)
    assert result["failed"] == ["revisions", "lint"]
    by_name = {s["name"]: s for s in result["steps"]}
    assert by_name["round-trip"]["status"] == "passed" and by_name["audits"]["status"] == "passed"
    assert by_name["revisions"]["problems"] == [
        (f"{SCRATCH}: its downgrade leaves table public.contacts, index public.idx_contacts_ci_scratch: "
         "there INDEX ON public.contacts USING btree (phone); should be (missing)"),
    ]
    assert any("require-concurrent-index-creation" in p and "idx_contacts_ci_scratch" in p for p in by_name["lint"]["problems"])
    failures = {case.get("name"): case.find("failure") for case in ET.parse(report).getroot().iter("testcase")}
    assert failures["round trip head→base→head"] is None
    failure = failures["each revision up/down/up"]
    assert failure is not None and "idx_contacts_ci_scratch" in (failure.text or "")


def test_a_downgrade_that_leaves_a_function_behind_fails_the_round_trip(pg_server: PostgresServer, tmp_path: Path) -> None:
    versions = scratch_revision(
        tmp_path / "versions",
        "CREATE OR REPLACE FUNCTION public.ci_scratch_answer() RETURNS integer LANGUAGE sql AS 'SELECT 42'",
        "SELECT 1",  # forgets DROP FUNCTION public.ci_scratch_answer()
    )
    seen: list[str] = []
    result = ci_run.run(server_url=pg_server.url, versions=(versions,), skip=("revisions", "lint"), fail_on=("unused",),
                        on_step=lambda step: seen.append(step.name))
    assert seen == ["upgrade", "round-trip", "audits"] and [s.name for s in result.failed] == ["round-trip", "audits"]
    trip = result.failed[0]
    assert trip.detail.endswith("object(s) left at base, 0 difference(s) back at head")
    assert trip.problems[0].startswith("left at base by the downgrade: function public.ci_scratch_answer(): "
                                       "there function returns integer, sql, volatile; definition sha256:")
    assert trip.problems[0].endswith("; should be (missing)")
    assert all("public.ci_scratch_answer()" in p for p in trip.problems)  # the function, then its grants
    audits = result.failed[1]  # --fail-on unused: a fresh database has used no index yet
    assert audits.problems and all(p.startswith("unused: ") for p in audits.problems)


def test_options_are_checked_before_any_server_starts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such revision"):
        CiOptions.from_params({"revisions": "0001_core_schema,9999_nope"})
    with pytest.raises(InputError, match="choose among round-trip, revisions, lint, audits"):
        CiOptions.from_params({"skip": "upgrade"})
    with pytest.raises(InputError, match="does not exist"):
        CiOptions.from_params({"junit_xml": str(tmp_path / "missing" / "ci.xml")})
    with pytest.raises(InputError, match="choose one of 15, 16, 17"):
        CiOptions.from_params({"postgres": "14"})
    options = CiOptions.from_params({"skip": "lint,audits", "fail_on": "all"})
    assert not options.runs("lint") and options.runs("revisions") and "unused" in options.failing_kinds
    assert CiOptions().failing_kinds == frozenset(CiOptions().fail_on) and "unused" not in CiOptions().failing_kinds

    done = run_cli("--database-url", "postgresql://app@db.example/app", "ci")
    assert done.returncode == 2 and "ci does not use --database-url" in done.stderr and "--server-url" in done.stderr


def test_a_postgres_version_that_is_not_installed_is_one_line_naming_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = provisioning.find_pg_bindir()
    assert bindir is not None
    installed = provisioning.bindir_version(bindir)
    missing = next(v for v in provisioning.VERSIONS if v != installed)
    monkeypatch.setenv("TRACKSCHEMA_PG_BINDIR", str(bindir))  # only the binaries found first
    with pytest.raises(ProvisioningError) as raised:
        ci_run.start_server(CiOptions(postgres=missing, provision="local"))
    message = str(raised.value)
    assert message.startswith(f"PostgreSQL {missing} is not available") and f"apt-get install postgresql-{missing}" in message
    assert f"brew install postgresql@{missing}" in message and "\n" not in message

    done = run_cli("ci", "--postgres", missing, "--provision", "local", env={"TRACKSCHEMA_PG_BINDIR": str(bindir)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and f"apt-get install postgresql-{missing}" in done.stderr


def test_without_a_url_ci_starts_a_server_from_the_local_binaries_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ci_run.start_server(CiOptions(provision="local"))
    try:
        assert server.kind == "local" and "from " + str(provisioning.find_pg_bindir()) in server.detail
        memory = provisioning.memory_dir()
        if memory is not None:  # a tmpfs with room: CREATE DATABASE ... TEMPLATE waits for no disk there
            assert f"data in {memory}/" in server.detail
        provisioning.require_version(server, provisioning.bindir_version(provisioning.find_pg_bindir()))  # type: ignore[arg-type]
        with pytest.raises(ProvisioningError, match="runs PostgreSQL"):
            provisioning.require_version(server, next(v for v in provisioning.VERSIONS if f"/{v}/" not in server.detail))
    finally:
        server.stop()


def test_a_server_where_ci_may_not_create_databases_is_refused_up_front(pg_server: PostgresServer) -> None:
    role = f"ts_ci_nocreatedb_{os.getpid()}"
    with scratch.admin(pg_server.url) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'nocreatedb'").format(sql.Identifier(role)))
    try:
        server = urlsplit(libpq_url(pg_server.url))
        url = f"postgresql://{role}:nocreatedb@{server.hostname}:{server.port}{server.path}"
        with pytest.raises(ProvisioningError) as raised:
            ci_run.start_server(CiOptions(server_url=url))
        assert str(raised.value).startswith(f"role {role} may not create databases on postgresql://{role}:***@")
        assert "--server-url" in str(raised.value) and "nocreatedb@" not in str(raised.value)
    finally:
        with scratch.admin(pg_server.url) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
