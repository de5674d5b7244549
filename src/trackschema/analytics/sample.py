"""Sample analytics traffic as ingest batches (JSON lines), for the demo, tests and benchmarks.

Deterministic for a given seed: visitors of a few user codes' pages over the last N UTC
days, each session one `session` event, a few `page_view`s and some `click`s, in the
seed's `POST /api/analytics/ingest` shape. `invalid_every=n` spoils every n-th event in a
way `analytics_ingest` must reject (a missing field, an unparsable or absurd time, an
unknown type).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

PAGE_TYPES = ("home", "contact", "profile", "portfolio")
CLICK_TARGETS = (("phone", "contact"), ("email", "contact"), ("whatsapp", "contact"), ("website", "link"), ("vcard", "download"))


def _spoil(event: dict[str, Any], n: int) -> dict[str, Any]:
    data = dict(event["data"])
    kind = n % 4
    if kind == 0:
        data.pop("session_id", None)
    elif kind == 1:
        for key in ("viewed_at", "clicked_at", "first_seen"):
            if key in data:
                data[key] = "not a time"
    elif kind == 2:
        return {"type": "purchase", "data": data}
    else:
        for key in ("viewed_at", "clicked_at", "first_seen"):
            if key in data:
                data[key] = "1999-12-31T23:59:59Z"
    return {"type": event["type"], "data": data}


def sample_events(*, now: datetime, users: int = 5, days: int = 7, sessions_per_day: int = 40, seed: int = 7,
                  prefix: str = "demo") -> Iterator[dict[str, Any]]:
    """Events of `sessions_per_day` sessions per day for `days` UTC days up to `now`, oldest
    first. `now` is the caller's (the database's `now()` where the events are compared with
    the server's today), so the sample never depends on this machine's clock."""
    rng = random.Random(seed)
    now = now.astimezone(timezone.utc)
    start_of_today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for day_offset in range(days - 1, -1, -1):
        day_start = start_of_today - timedelta(days=day_offset)
        span = (now - day_start).total_seconds() if day_offset == 0 else 86_400.0
        for n in range(sessions_per_day):
            user = f"user{min(int(rng.paretovariate(1.2)), users)}"
            share = rng.choice((None, "card", "qr", "email-signature"))
            session_id = f"{prefix}-{day_start:%Y%m%d}-{n}"
            t = day_start + timedelta(seconds=rng.uniform(0, max(span - 120, 1)))
            common = {"session_id": session_id, "user_code": user, **({"share_code": share} if share else {})}
            yield {"type": "session", "data": {**common, "first_seen": t.isoformat(), "user_agent": "Mozilla/5.0 (demo)",
                                                "referrer": rng.choice(("https://example.com", "https://search.example", ""))}}
            for i in range(rng.randint(1, 6)):
                yield {"type": "page_view", "data": {**common, "page_type": rng.choice(PAGE_TYPES),
                                                     "viewed_at": (t + timedelta(seconds=10 * i)).isoformat()}}
            for i in range(rng.randint(0, 3)):
                target, category = rng.choice(CLICK_TARGETS)
                yield {"type": "click", "data": {**common, "click_target": target, "click_category": category,
                                                 "clicked_at": (t + timedelta(seconds=10 * i + 5)).isoformat()}}


def sample_batches(*, batch_size: int = 200, invalid_every: int = 0, **kwargs: Any) -> Iterator[str]:
    """`sample_events` cut into batches of `batch_size` events, one JSON line each."""
    batch: list[dict[str, Any]] = []
    for n, event in enumerate(sample_events(**kwargs), start=1):
        batch.append(_spoil(event, n // invalid_every) if invalid_every and n % invalid_every == 0 else event)
        if len(batch) == batch_size:
            yield json.dumps({"events": batch})
            batch = []
    if batch:
        yield json.dumps({"events": batch})
