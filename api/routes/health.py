"""Liveness and readiness: /healthz says the process is up, /readyz that the DB and Temporal answer."""

import asyncio

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse

from api.deps import get_temporal
from api.errors import Problem
from api.routing import SlashRouter

router = SlashRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and Temporal are reachable", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        async with request.app.state.db.session() as session:
            await asyncio.wait_for(session.exec(sa.text("SELECT 1")), timeout=3)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        client = await get_temporal(request)
        await asyncio.wait_for(client.service_client.check_health(), timeout=3)
        checks["temporal"] = "ok"
    except Problem:
        checks["temporal"] = f"unreachable at {request.app.state.settings.temporal_address}"
    except Exception as exc:
        checks["temporal"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )
