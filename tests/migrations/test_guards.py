"""Downgrade guards the server cannot plan up front (runner.check_downgrade_guards): on
Citus the guards of the revisions below 0100 read tables that are still distributed
before 0100's downgrade runs, and Citus refuses to plan them (FeatureNotSupported). Such a
guard is left to its own revision, which still refuses before changing anything. Here a
throwaway revision's guard raises that error while the transaction is read-only (as the
up-front check's is) and guards its table for real inside its revision."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import make_settings
from tests.revisions import HEAD, scratch_revision
from trackschema.errors import RevisionError
from trackschema.migrations import runner as migrate

GUARDED = "zz_guarded_rows"
GUARD = f"""DO $guard$
BEGIN
    IF current_setting('transaction_read_only') = 'on' THEN
        RAISE EXCEPTION 'cannot plan this guard here' USING ERRCODE = 'feature_not_supported';
    END IF;
    IF EXISTS (SELECT 1 FROM {GUARDED}) THEN
        RAISE EXCEPTION 'refusing to drop {GUARDED}: it holds rows';
    END IF;
END
$guard$;
DROP TABLE {GUARDED};"""


def test_a_guard_the_server_cannot_plan_up_front_refuses_in_its_own_revision(db_url: str, tmp_path: Path) -> None:
    versions = [scratch_revision(tmp_path / "versions", GUARDED, upgrade=f"CREATE TABLE {GUARDED} (n integer)", downgrade=GUARD)]
    settings = make_settings(db_url)
    migrate.upgrade(settings, GUARDED, extra_version_locations=versions)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {GUARDED} VALUES (1), (2)")

    with pytest.raises(RevisionError, match=f"refusing to drop {GUARDED}: it holds rows"):
        migrate.downgrade(settings, HEAD, extra_version_locations=versions)
    assert migrate.current_heads(settings) == [GUARDED]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {GUARDED}").fetchone() == (2,)
        conn.execute(f"DELETE FROM {GUARDED}")

    migrate.downgrade(settings, HEAD, extra_version_locations=versions)
    assert migrate.current_heads(settings) == [HEAD]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (GUARDED,)).fetchone() == (None,)
