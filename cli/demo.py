"""`make run`: the demo on the embedded stack — a sample company's DNA researched through the API, with live progress."""

import asyncio
import time
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import select

from models.enums import Role, Tier
from models.settings import Settings

console = Console()

DEMO_TENANT = "Demo tenant"
SAMPLE_COMPANY = {
    "name": "Northwind Coffee Roasters",
    "website": "https://northwind-coffee.example",
    "country": "Czech Republic",
    "language": "en",
    "industry": "Specialty coffee",
    "timezone": "Europe/Prague",
}


async def demo_key(database_url: str) -> str:
    """A fresh marketer key of the demo tenant (created on first run, reused after); revoked after the run."""
    from api.keys import add_key, create_tenant
    from models.db import Database
    from models.tables import Tenant

    db = Database.from_url(database_url, pool_size=1)
    try:
        async with db.session() as session:
            tenant = (await session.exec(select(Tenant).where(Tenant.name == DEMO_TENANT))).first()
            if tenant is None:
                tenant, _ = await create_tenant(session, DEMO_TENANT, Tier.ULTIMATE)
            key, _ = await add_key(session, tenant.id, Role.MARKETER)
            await session.commit()
            return key
    finally:
        await db.close()


async def run_dna_job(api_url: str, key: str, wait_seconds: float = 180) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http:
        company = (await http.post("/api/v1/companies", json=SAMPLE_COMPANY)).raise_for_status().json()
        console.print(f"company [bold]{company['name']}[/] created: {company['id']}")
        started = (await http.post(f"/api/v1/ai/companies/{company['id']}/scrape-dna/")).raise_for_status().json()
        job_id = started["jobId"]
        console.print(f"DNA job accepted (202): {job_id}")

        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[message]}"), TimeElapsedColumn(), console=console,
        ) as progress:
            bar = progress.add_task("company DNA", total=100, message="queued")
            deadline = time.monotonic() + wait_seconds
            while True:
                job = (await http.get(f"/api/v1/ai/jobs/{job_id}/")).raise_for_status().json()
                progress.update(bar, completed=job["progress"], message=job["progressMessage"])
                if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the DNA job did not finish within {wait_seconds} s")
                await asyncio.sleep(0.25)
        dna = None
        if job["status"] == "COMPLETED":
            dna = (await http.get(f"/api/v1/companies/{company['id']}/dna")).raise_for_status().json()
        return {"company": company, "job": job, "dna": dna}


def show(outcome: dict[str, Any]) -> None:
    job = outcome["job"]
    table = Table(title="AIJob", show_header=False)
    for field in ("id", "jobType", "status", "progress", "progressMessage", "createdAt", "startedAt", "completedAt", "workflowId", "temporalUiUrl"):
        table.add_row(field, str(job.get(field)))
    usage = job["usage"]
    table.add_row("usage", f"{usage['inputTokens']} in / {usage['outputTokens']} out tokens, ${usage['costUsd']} ({usage['provider']})")
    if job["errorMessage"]:
        table.add_row("errorMessage", job["errorMessage"])
    console.print(table)
    dna = outcome["dna"]
    if dna:
        points = Table(title=f"Company DNA v{dna['version']}: {len(dna['dataPoints'])} data points, {len(dna['sources'])} sources"
                       + (" (SAMPLE CONTENT from the offline provider)" if dna["isSample"] else ""))
        points.add_column("data point")
        points.add_column("value")
        points.add_column("sources")
        for point in dna["dataPoints"][:8]:
            points.add_row(point["name"], point["value"][:100], ", ".join(f"[{i}]" for i in point["sourceIndexes"]))
        console.print(points)
        for index, source in enumerate(dna["sources"][:4]):
            console.print(f"  [{index}] {source['title']} - {source['url']}")


async def revoke_demo_key(database_url: str, key: str) -> None:
    from api.keys import revoke_api_key
    from models.db import Database

    db = Database.from_url(database_url, pool_size=1)
    try:
        async with db.session() as session:
            await revoke_api_key(session, key.split("_")[1])
    finally:
        await db.close()


async def demo(api_url: str, database_url: str) -> dict[str, Any]:
    key = await demo_key(database_url)
    try:
        return await run_dna_job(api_url, key)
    finally:
        await revoke_demo_key(database_url, key)


def running_api(settings: Settings) -> str | None:
    """The API of a stack that is already up (`make dev`), if it answers ready."""
    try:
        ready = httpx.get(f"{settings.public_base_url}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return settings.public_base_url if ready.status_code == 200 else None


def run_demo(settings: Settings) -> int:
    from cli.stack import DevStack, resolve_database_url

    console.rule("content-pipeline demo")
    api_url = running_api(settings)
    if api_url is not None:
        console.print(f"using the stack already running at {api_url}")
        outcome = asyncio.run(demo(api_url, resolve_database_url(settings)))
        show(outcome)
    else:
        with DevStack(settings) as stack:
            outcome = asyncio.run(demo(stack.api_url, stack.database_url))
            show(outcome)
    status = outcome["job"]["status"]
    console.rule(f"demo finished: job {status}")
    return 0 if status == "COMPLETED" else 1
