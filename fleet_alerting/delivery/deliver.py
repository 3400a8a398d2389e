"""The one way into delivery: a watch run, the delivery right after an operator's action, the
PagerDuty webhook and `notify-test` all drain the outbox through `deliver`, with the configured
notifiers, attempts, give-up age and per-channel leases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from fleet_alerting.config import Config
from fleet_alerting.core.clock import utcnow
from fleet_alerting.delivery.channels import build_notifiers, lease_for
from fleet_alerting.delivery.drain import MAX_WAIT, DrainReport, drain
from fleet_alerting.store.database import Store
from fleet_alerting.store.outbox import Outbox


async def deliver(
    config: Config,
    store: Store,
    client: httpx.AsyncClient,
    *,
    now: Callable[[], datetime] = utcnow,
    attempts_per_run: int | None = None,
    outbox: Outbox | None = None,
) -> DrainReport:
    """Send what is due in `store`'s outbox (or in `outbox`, a view of it that holds back what
    this caller must not send). `attempts_per_run`: the config's unless given."""
    return await drain(
        outbox if outbox is not None else store,
        build_notifiers(config, client, store),
        now,
        attempts_per_run=attempts_per_run or config.notify.attempts_per_run,
        give_up_after=config.notify.give_up_after,
        lease=lease_for(config, MAX_WAIT),
    )
