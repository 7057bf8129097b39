"""What every start endpoint shares: the Idempotency-Key, the tenant's rate limit, and the workflow's start.

A start runs in one transaction: look up the key (a replay returns what the first request made), then add the new
row, claim the key and take a token from the tenant's bucket in one statement (a concurrent request with the same key
waits on the unique index and then replays; no token left: 429 and the whole transaction, key included, is rolled
back), commit; then start the workflow and answer. Only when the engine refuses is there more: record that on the
row, free the key and answer 503.
"""

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, LiteralString

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair

from api.deps import MarketerDep, Principal, SessionDep, SettingsDep, driver_rows
from api.errors import Problem, problem
from api.services.idempotency import CLAIM_KEY, Idempotency, IdempotencyKeyHeader, request_fingerprint
from api.services.rate_limits import TAKE_START_TOKEN, refuse_if_empty, start_token_params
from api.services.temporal import start_workflow
from models.db import RowInsert
from models.settings import Settings

logger = logging.getLogger(__name__)

MAX_MONTHS_AHEAD = 24

START_PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: problem("the request conflicts with the current state (see detail)"),
    422: problem("the request is not valid, or its Idempotency-Key was used with another request"),
    429: problem("too many start requests for the tenant's tier; retry after the Retry-After seconds"),
    503: problem("the workflow engine is not reachable; nothing was started"),
}


def check_month(month: str) -> None:
    """A month to plan: this one or a later one, at most 24 months ahead (the format is checked by the model)."""
    year, number = (int(part) for part in month.split("-"))
    now = datetime.now(UTC)
    ahead = (year - now.year) * 12 + number - now.month
    if ahead < 0:
        raise Problem(
            422,
            f"{month} is over; plan the current month or a later one",
            errors=[{"field": "month", "message": "in the past", "type": "past_month"}],
        )
    if ahead > MAX_MONTHS_AHEAD:
        raise Problem(
            422,
            f"plan at most {MAX_MONTHS_AHEAD} months ahead",
            errors=[{"field": "month", "message": "too far ahead", "type": "month_too_far"}],
        )


@dataclass
class StartGuard:
    """One start request: who asks, with which key (if any), for what."""

    principal: Principal
    settings: Settings
    idempotency: Idempotency
    # What an earlier request with this key started, as looked up when the request came in.
    replay_of: uuid.UUID | None = None

    async def earlier(self, session: AsyncSession) -> uuid.UUID | None:
        """What an earlier request with this key started; 422 when that request was a different one."""
        return await self.idempotency.earlier(session)

    async def admit(
        self, session: AsyncSession, resource_id: uuid.UUID, made: RowInsert | None = None
    ) -> uuid.UUID | None:
        """In one statement: writes the new row (`made`; or it was flushed before), ties the key to it and takes a
        token of the tenant's start-request bucket. A concurrent request that claimed the key first wins: the
        transaction is rolled back (the row and the token with it) and what that request started is returned for a
        replay. An empty bucket: 429, the same rollback."""
        params = start_token_params(self.settings, self.principal)
        parts: list[LiteralString] = [TAKE_START_TOKEN]
        claim: LiteralString = "NULL::uuid"
        if made is not None:
            parts.insert(0, "made AS (" + made.sql + ")")
            params |= made.params
        if self.idempotency.key is not None:
            parts.append(CLAIM_KEY)
            params |= self.idempotency.claim_params(resource_id)
            claim = "(SELECT id FROM claimed)"
        statement = "WITH " + ",".join(parts) + " SELECT (SELECT tokens FROM taken), " + claim
        [(tokens, claim_id)] = await driver_rows(session, statement, params)
        if self.idempotency.key is not None and claim_id is None:
            await session.rollback()
            return await self.idempotency.earlier(session)
        await refuse_if_empty(session, self.settings, self.principal, float(tokens))
        return None

    async def launch(
        self,
        session: AsyncSession,
        temporal: Client,
        run: Any,
        argument: Any,
        *,
        workflow_id: str,
        company_id: uuid.UUID,
        attribute: SearchAttributePair[str],
        refused: Callable[[], Awaitable[None]],
        what: str,
    ) -> None:
        """Starts the workflow (a repeat is a no-op). When the engine refuses, `refused` records that on the row,
        the key is freed and the caller gets a 503."""
        try:
            await start_workflow(
                temporal,
                self.settings,
                self.principal,
                run,
                argument,
                workflow_id=workflow_id,
                company_id=company_id,
                attribute=attribute,
            )
        except Exception as exc:
            logger.exception("could not start %s workflow %s", what, workflow_id)
            await refused()
            await self.idempotency.release(session)
            raise Problem(
                503, f"the workflow engine is not reachable; the {what} was not started", headers={"Retry-After": "5"}
            ) from exc


async def start_guard(
    request: Request,
    principal: MarketerDep,
    settings: SettingsDep,
    session: SessionDep,
    key: IdempotencyKeyHeader = None,
) -> StartGuard:
    """Checks the key before anything else: a key reused with another request is refused whatever that request says."""
    body = await request.body()  # Starlette caches it: the route's body parameter reads the same bytes
    fingerprint = request_fingerprint(request.method, request.url.path, body)
    guard = StartGuard(
        principal=principal,
        settings=settings,
        idempotency=Idempotency(tenant_id=principal.tenant_id, key=key, fingerprint=fingerprint),
    )
    guard.replay_of = await guard.earlier(session)
    return guard


StartGuardDep = Annotated[StartGuard, Depends(start_guard)]
