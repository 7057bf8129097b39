"""What every start endpoint shares: the Idempotency-Key and the tenant's rate limit.

A start runs in one transaction: look up the key (a replay returns what the first request made), add the new row,
claim the key (a concurrent request with the same key waits on the unique index and then replays), take a token
from the tenant's bucket (none left: 429 and the whole transaction, key included, is rolled back), commit.
"""

import hashlib
import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Header, Request
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import MarketerDep, Principal, SessionDep, SettingsDep
from api.errors import Problem, problem
from models.enums import Tier
from models.settings import Settings
from models.tables import IdempotencyKey, RateBucket, utcnow
from workflows.policies import PIPELINE_QUEUE, priority_for

logger = logging.getLogger(__name__)

# Search attributes every started workflow carries: operators find a tenant's or a company's work in the Web UI.
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
COMPANY_ID = SearchAttributeKey.for_keyword("CompanyId")

MAX_MONTHS_AHEAD = 24
# A key is remembered this long; after that the same key starts something new.
KEY_RETENTION = timedelta(hours=24)

START_PROBLEMS: dict[int | str, dict[str, Any]] = {
    409: problem("the request conflicts with the current state (see detail)"),
    422: problem("the request is not valid, or its Idempotency-Key was used with another request"),
    429: problem("too many start requests for the tenant's tier; retry after the Retry-After seconds"),
    503: problem("the workflow engine is not reachable; nothing was started"),
}

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="any string of printable ASCII (a UUID is a good choice): a retried request with the same key and body "
        "returns the first request's result instead of starting again; with another body it is refused (422)",
    ),
]


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """The same request whatever the whitespace, key order or trailing slash."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")) if body.strip() else ""
    except ValueError:
        canonical = body.decode("utf-8", "replace")
    return hashlib.sha256(f"{method} {path.rstrip('/')}\n{canonical}".encode()).hexdigest()


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


def per_minute(settings: Settings, tier: Tier) -> int:
    return {
        Tier.FREE: settings.rate_limit_free_per_minute,
        Tier.PRO: settings.rate_limit_pro_per_minute,
        Tier.ULTIMATE: settings.rate_limit_ultimate_per_minute,
    }[tier]


@dataclass
class StartGuard:
    """One start request: who asks, with which key (if any), for what."""

    principal: Principal
    settings: Settings
    key: str | None
    fingerprint: str
    # What an earlier request with this key started, as looked up when the request came in.
    replay_of: uuid.UUID | None = None

    async def earlier(self, session: AsyncSession) -> uuid.UUID | None:
        """What an earlier request with this key started; 422 when that request was a different one."""
        if self.key is None:
            return None
        row = (
            await session.exec(  # type: ignore[call-overload]
                sa.select(IdempotencyKey).where(
                    col(IdempotencyKey.tenant_id) == self.principal.tenant_id, col(IdempotencyKey.key) == self.key
                )
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        if row.created_at < utcnow() - KEY_RETENTION:
            await session.delete(row)
            await session.flush()
            return None
        if row.request_hash != self.fingerprint:
            raise Problem(
                422,
                "this Idempotency-Key was already used with another request; use a new key for a new request",
                errors=[
                    {
                        "field": "header.Idempotency-Key",
                        "message": "used with another request",
                        "type": "idempotency_key_reused",
                    }
                ],
            )
        resource_id: uuid.UUID = row.resource_id
        return resource_id

    async def claim(self, session: AsyncSession, resource_id: uuid.UUID) -> uuid.UUID | None:
        """Ties the key to the new row (flushed before). A concurrent request that claimed it first wins:
        its resource id is returned and the caller rolls back and replays."""
        if self.key is None:
            return None
        inserted = await session.exec(  # type: ignore[call-overload]
            insert(IdempotencyKey)
            .values(
                id=uuid.uuid4(),
                tenant_id=self.principal.tenant_id,
                key=self.key,
                request_hash=self.fingerprint,
                resource_id=resource_id,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
            .returning(col(IdempotencyKey.id))
        )
        if inserted.first() is not None:
            return None
        await session.rollback()
        return await self.earlier(session)

    async def admit(self, session: AsyncSession) -> None:
        """Takes one token from the tenant's bucket (refilled at the tier's rate per minute); 429 when empty.
        The bucket row stays locked until the caller's transaction ends, so concurrent starts count exactly."""
        capacity = per_minute(self.settings, self.principal.tier)
        rate = capacity / 60.0
        table = RateBucket.__table__  # type: ignore[attr-defined]
        refilled = sa.func.least(
            capacity, table.c.tokens + sa.extract("epoch", sa.func.now() - table.c.updated_at) * rate
        )
        statement = (
            insert(table)
            .values(tenant_id=self.principal.tenant_id, tokens=capacity - 1, updated_at=sa.func.now())
            .on_conflict_do_update(
                index_elements=["tenant_id"], set_={"tokens": refilled - 1, "updated_at": sa.func.now()}
            )
            .returning(table.c.tokens)
        )
        tokens = float((await session.exec(statement)).scalar_one())  # type: ignore[call-overload]
        if tokens < 0:
            await session.rollback()
            retry_after = max(1, math.ceil(-tokens / rate))
            raise Problem(
                429,
                f"at most {capacity} start requests a minute on the {self.principal.tier.value} tier; retry in {retry_after} s",
                title="Too Many Requests",
                headers={"Retry-After": str(retry_after)},
            )

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
        """Starts a workflow under the id its row recorded: a repeat is a no-op, never a second workflow. When the
        engine refuses, `refused` records that on the row, the key is freed and the caller gets a 503."""
        try:
            await temporal.start_workflow(
                run,
                argument,
                id=workflow_id,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                task_queue=PIPELINE_QUEUE + self.settings.task_queue_suffix,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(TENANT_ID, str(self.principal.tenant_id)),
                        SearchAttributePair(COMPANY_ID, str(company_id)),
                        attribute,
                    ]
                ),
                priority=priority_for(self.principal.tier),
            )
        except WorkflowAlreadyStartedError:
            return
        except Exception as exc:
            logger.exception("could not start %s workflow %s", what, workflow_id)
            await refused()
            await self.release(session)
            raise Problem(
                503, f"the workflow engine is not reachable; the {what} was not started", headers={"Retry-After": "5"}
            ) from exc

    async def release(self, session: AsyncSession) -> None:
        """Frees the key after a start that did not happen (the engine was down), so a retry starts afresh."""
        if self.key is None:
            return
        await session.exec(  # type: ignore[call-overload]
            sa.delete(IdempotencyKey).where(
                col(IdempotencyKey.tenant_id) == self.principal.tenant_id, col(IdempotencyKey.key) == self.key
            )
        )
        await session.commit()


async def start_guard(
    request: Request,
    principal: MarketerDep,
    settings: SettingsDep,
    session: SessionDep,
    key: IdempotencyKeyHeader = None,
) -> StartGuard:
    """Checks the key before anything else: a key reused with another request is refused whatever that request says."""
    body = await request.body()  # Starlette caches it: the route's body parameter reads the same bytes
    guard = StartGuard(
        principal=principal,
        settings=settings,
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, body),
    )
    guard.replay_of = await guard.earlier(session)
    return guard


StartGuardDep = Annotated[StartGuard, Depends(start_guard)]
