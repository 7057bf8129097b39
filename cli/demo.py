"""`make run`: one whole pipeline for a sample company through the API on the embedded stack — research, personas,
topics, blog posts, social posts, images and video, each gate decided as a supervisor would, the month's schedule
compressed to seconds and delivered to a local webhook receiver."""

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlmodel import select

from cli.receiver import DemoReceiver, receiving
from models.enums import Role, Tier
from models.pipeline import month_after
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
PLATFORMS = ["linkedin", "x", "instagram"]
DEMO_OPTIONS = {
    "topicsPerPersona": 1,
    "blogPages": 4,
    "compressScheduleSeconds": 20,  # the month's publish times, in order, within 20 s
    "blogUrlTemplate": "https://northwind-coffee.example/blog/{slug}",  # social posts link to their blog post
}
TOPIC_FEEDBACK = "Too generic. Tell one customer's story with numbers, and name the brewing method."
BLOG_FEEDBACK = "Open with the customer's problem, and cite a source in the first paragraph."
TERMINAL = {"COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"}

# The bars: a stage's jobs done out of those started.
STAGES = [
    ("research", ["generate_dna"]),
    ("personas", ["generate_personas"]),
    ("topics", ["generate_topics"]),
    ("blog posts", ["generate_blogpost"]),
    ("social posts", ["generate_social"]),
    ("images and video", ["generate_image", "generate_video"]),
]


@dataclass
class DemoKeys:
    tenant_id: str
    keys: dict[Role, str] = field(default_factory=dict)

    def headers(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def demo_keys(database_url: str) -> DemoKeys:
    """Fresh keys of the demo tenant (ULTIMATE, created on first run and reused), revoked after the run."""
    from api.keys import add_key, create_tenant
    from models.db import Database
    from models.tables import Tenant

    db = Database.from_url(database_url, pool_size=1)
    try:
        async with db.session() as session:
            tenant = (await session.exec(select(Tenant).where(Tenant.name == DEMO_TENANT))).first()
            if tenant is None:
                tenant, _ = await create_tenant(session, DEMO_TENANT, Tier.ULTIMATE)
            keys = DemoKeys(tenant_id=str(tenant.id))
            for role in Role:
                keys.keys[role], _ = await add_key(session, tenant.id, role)
            await session.commit()
            return keys
    finally:
        await db.close()


async def revoke_demo_keys(database_url: str, keys: DemoKeys) -> None:
    from api.keys import revoke_api_key
    from models.db import Database

    db = Database.from_url(database_url, pool_size=1)
    try:
        async with db.session() as session:
            for key in keys.keys.values():
                await revoke_api_key(session, key.split("_")[1])
    finally:
        await db.close()


class Supervisor:
    """Decides each gate as a careful supervisor would: three personas, one topic sent back with feedback,
    one blog post sent back once, everything else approved."""

    def __init__(self, http: httpx.AsyncClient, keys: DemoKeys, say: Any) -> None:
        self.http = http
        self.headers = keys.headers(Role.SUPERVISOR)
        self.say = say
        self.rejected_topic = False
        self.sent_back: str | None = None
        self.decided: set[tuple[str, str, int]] = set()

    async def decide(self, pipeline: dict[str, Any]) -> None:
        """Every gate open now: blog posts and failed branches can wait at the same time."""
        for gate in pipeline.get("pendingApprovals") or []:
            await self._decide_gate(pipeline, gate)

    async def _decide_gate(self, pipeline: dict[str, Any], gate: dict[str, Any]) -> None:
        base = f"/api/v1/ai/pipelines/{pipeline['id']}/approvals"
        items = gate["items"]
        if gate["gate"] == "failure":
            # A failed topic is retried once from the stage that failed; if it fails again, it is dropped.
            for item in items:
                key = ("failure", item["id"], item["revision"])
                if key in self.decided:
                    continue
                self.decided.add(key)
                decision = "retry" if item["revision"] == 0 else "drop"
                await self._post(f"{base}/failures/{item['id']}/", {"decision": decision})
                self.say(f"supervisor chose to {decision} the failed topic {item['title']!r}: {item['detail']}")
            return
        if gate["gate"] == "personas":
            if ("personas", "", 0) in self.decided:
                return
            chosen = items[:3]
            await self._post(f"{base}/personas/", {"selectedPersonaIds": [i["id"] for i in chosen]})
            self.decided.add(("personas", "", 0))
            self.say(f"supervisor selected 3 of 6 personas: {', '.join(i['title'] for i in chosen)}")
        elif gate["gate"] == "topics":
            key = ("topics", ",".join(sorted(i["id"] for i in items)), 0)
            if key in self.decided:
                return
            self.decided.add(key)
            if not self.rejected_topic and len(items) > 1:
                self.rejected_topic = True
                first, rest = items[0], items[1:]
                await self._post(
                    f"{base}/topics/",
                    {
                        "approvedTopicIds": [i["id"] for i in rest],
                        "rejected": [{"topicId": first["id"], "feedback": TOPIC_FEEDBACK}],
                    },
                )
                self.say(f"supervisor approved {len(rest)} topics and sent back {first['title']!r}: {TOPIC_FEEDBACK}")
            else:
                await self._post(f"{base}/topics/", {"approvedTopicIds": [i["id"] for i in items], "rejected": []})
                self.say(f"supervisor approved {len(items)} topic(s): {', '.join(repr(i['title']) for i in items)}")
        else:
            for item in items:
                key = ("blogpost", item["id"], item["revision"])
                if key in self.decided:
                    continue
                self.decided.add(key)
                if self.sent_back is None:
                    self.sent_back = item["id"]
                    await self._post(
                        f"{base}/blogposts/{item['id']}/", {"decision": "request_changes", "feedback": BLOG_FEEDBACK}
                    )
                    self.say(f"supervisor sent back {item['title']!r}: {BLOG_FEEDBACK}")
                else:
                    await self._post(f"{base}/blogposts/{item['id']}/", {"decision": "approve"})
                    self.say(f"supervisor approved {item['title']!r} (revision {item['revision'] + 1})")

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        response = await self.http.post(path, json=body, headers=self.headers)
        if response.status_code >= 400:
            raise RuntimeError(f"the decision was refused: {response.status_code} {response.text}")


class StageBars:
    """One rich progress bar per stage, from the pipeline's jobs and counts."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.bars: dict[str, TaskID] = {
            name: progress.add_task(name, total=1, completed=0, message="waiting") for name, _ in STAGES
        }
        self.bars["publishing"] = progress.add_task("publishing", total=1, completed=0, message="waiting")

    def update(self, pipeline: dict[str, Any]) -> None:
        jobs = pipeline["jobs"]
        for name, types in STAGES:
            mine = [j for j in jobs if j["jobType"] in types]
            if not mine:
                continue
            done = sum(1 for j in mine if j["status"] == "COMPLETED")
            running = [j for j in mine if j["status"] in ("PENDING", "PROCESSING")]
            message = running[-1]["progressMessage"] if running else f"{done} of {len(mine)} jobs done"
            partial = sum(j["progress"] / 100 for j in running)
            self.progress.update(self.bars[name], total=len(mine), completed=done + partial, message=message[:60])
        counts = pipeline.get("counts", {})
        posts = counts.get("socialPosts", 0)
        if posts:
            delivered = counts.get("published", 0) + counts.get("unconfirmed", 0) + counts.get("publishFailed", 0)
            self.progress.update(
                self.bars["publishing"],
                total=posts,
                completed=delivered,
                message=f"{counts.get('published', 0)} published",
            )


class LocalWebhookRefused(RuntimeError):
    """The API refuses the demo's receiver on 127.0.0.1: it runs without WEBHOOK_ALLOW_PRIVATE_NETWORKS."""

    def __init__(self, api_url: str, detail: str) -> None:
        super().__init__(
            f"the stack at {api_url} refuses the demo's webhook receiver on this machine ({detail}). "
            "Stop that stack and start it with WEBHOOK_ALLOW_PRIVATE_NETWORKS=true "
            "(`WEBHOOK_ALLOW_PRIVATE_NETWORKS=true make dev`), or stop it and run `make run` alone: "
            "the demo then starts a stack of its own that allows it."
        )


async def run_pipeline(api_url: str, keys: DemoKeys, wait_seconds: float = 600) -> dict[str, Any]:
    receiver = DemoReceiver()
    async with receiving(receiver) as webhook_url, httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        admin, marketer = keys.headers(Role.ADMIN), keys.headers(Role.MARKETER)
        answer = await http.put("/api/v1/tenant/webhook", json={"url": webhook_url}, headers=admin)
        if answer.status_code == 422 and "WEBHOOK_ALLOW_PRIVATE_NETWORKS" in answer.text:
            raise LocalWebhookRefused(api_url, answer.json().get("detail", answer.text))
        receiver.secret = answer.raise_for_status().json()["secret"]
        console.print(f"webhook receiver listening at {webhook_url} (deliveries follow Standard Webhooks)")

        company = (
            (await http.post("/api/v1/companies", json=SAMPLE_COMPANY, headers=marketer)).raise_for_status().json()
        )
        console.print(f"company [bold]{company['name']}[/] created: {company['id']}")
        month = month_after(datetime.now(UTC))
        started = (
            (
                await http.post(
                    f"/api/v1/ai/companies/{company['id']}/pipelines/",
                    json={"month": month, "platforms": PLATFORMS, "options": DEMO_OPTIONS},
                    headers=marketer,
                )
            )
            .raise_for_status()
            .json()
        )
        pipeline_id = started["pipelineId"]
        console.print(f"pipeline for {month} accepted (202): {pipeline_id}  workflow {started['workflowId']}")

        with Progress(
            TextColumn("[bold]{task.description:<17}"),
            BarColumn(),
            TextColumn("{task.completed:>4.1f}/{task.total:<3.0f}"),
            TextColumn("{task.fields[message]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            bars = StageBars(progress)
            supervisor = Supervisor(http, keys, lambda text: progress.console.print(f"[cyan]{text}[/]"))
            deadline = time.monotonic() + wait_seconds
            shown_gate: str | None = None
            while True:
                pipeline = (
                    (await http.get(f"/api/v1/ai/pipelines/{pipeline_id}/", headers=marketer)).raise_for_status().json()
                )
                bars.update(pipeline)
                if pipeline["status"] in TERMINAL:
                    break
                gate = pipeline.get("pendingApproval")
                if gate and gate["gate"] != shown_gate:
                    shown_gate = gate["gate"]
                    progress.console.print(
                        f"[yellow]the pipeline waits for the {shown_gate} approval ({len(gate['items'])} item(s))[/]"
                    )
                elif not gate:
                    shown_gate = None
                await supervisor.decide(pipeline)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the pipeline did not finish within {wait_seconds} s")
                await asyncio.sleep(0.4)
        jobs = (
            await http.get(f"/api/v1/ai/companies/{company['id']}/jobs/", params={"limit": 200}, headers=marketer)
        ).json()["data"]
        await http.delete("/api/v1/tenant/webhook", headers=admin)
        return {"company": company, "pipeline": pipeline, "jobs": jobs, "receiver": receiver}


def show(outcome: dict[str, Any], api_url: str) -> None:
    pipeline, jobs, receiver = outcome["pipeline"], outcome["jobs"], outcome["receiver"]
    artifacts = pipeline["artifacts"]
    table = Table(title=f"Pipeline {pipeline['id']}: {pipeline['status']}", show_header=False)
    table.add_row("company", outcome["company"]["name"])
    table.add_row(
        "month, platforms", f"{pipeline['month']}, {', '.join(pipeline['platforms'])} ({pipeline['tier']} tier)"
    )
    for name, key in (
        ("DNA versions", "dna"),
        ("personas", "personas"),
        ("topics", "topics"),
        ("blog posts", "blogPosts"),
        ("social posts", "socialPosts"),
        ("images and videos", "media"),
    ):
        table.add_row(name, str(len(artifacts[key])))
    counts = pipeline["counts"]
    table.add_row(
        "decisions",
        f"{counts.get('personasSelected', 0)} personas selected, {counts.get('topicsRejected', 0)} topic(s) "
        f"sent back, {counts.get('blogRevisions', 0)} blog revision(s) requested",
    )
    media_bytes = sum(d.media_bytes for d in receiver.posts)
    table.add_row(
        "published",
        f"{counts.get('published', 0)} posts delivered to the webhook "
        f"({len(receiver.posts)} signed deliveries received, {receiver.duplicates} repeat(s) recognised, "
        f"{media_bytes:,} bytes of media fetched)",
    )
    tokens_in = sum(j["usage"]["inputTokens"] for j in jobs)
    tokens_out = sum(j["usage"]["outputTokens"] for j in jobs)
    cost = sum(float(j["usage"]["costUsd"]) for j in jobs)
    providers = sorted({p for j in jobs for p in (j["usage"]["provider"] or "").split(",") if p})
    table.add_row("jobs", f"{len(jobs)} ({', '.join(sorted({j['status'] for j in jobs}))})")
    table.add_row(
        "tokens, cost", f"{tokens_in:,} in / {tokens_out:,} out, ${cost:.4f} ({', '.join(providers) or 'none'})"
    )
    if pipeline["reason"]:
        table.add_row("reason", pipeline["reason"])
    table.add_row("Temporal Web UI", pipeline["temporalUiUrl"])
    table.add_row(
        "studio",
        f"{api_url}/studio/pipelines/{pipeline['id']} (while the stack runs, e.g. under `make dev`: sign in with "
        "an API key from `content-pipeline apikey create`)",
    )
    console.print(table)
    if "offline" in providers:
        console.print(
            "[dim]No provider keys are set: every text, image and video above is SAMPLE content"
            " from the offline provider.[/]"
        )
    for delivery in receiver.posts[:3]:
        data = delivery.data
        console.print(escape(f"  [{data['platform']}] planned for {data.get('publishAt')}: {data['text'][:80]}..."))


async def demo(api_url: str, database_url: str) -> dict[str, Any]:
    keys = await demo_keys(database_url)
    try:
        return await run_pipeline(api_url, keys)
    finally:
        await revoke_demo_keys(database_url, keys)


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
    try:
        if api_url is not None:
            console.print(f"using the stack already running at {api_url}")
            outcome = asyncio.run(demo(api_url, resolve_database_url(settings)))
            show(outcome, api_url)
        else:
            # The demo's receiver listens on 127.0.0.1, which webhooks may not reach unless the stack allows it.
            own = settings.model_copy(update={"webhook_allow_private_networks": True})
            with DevStack(own) as stack:
                outcome = asyncio.run(demo(stack.api_url, stack.database_url))
                show(outcome, stack.api_url)
    except LocalWebhookRefused as refused:
        console.print(f"[red bold]✗ {escape(str(refused))}[/]")
        return 1
    pipeline = outcome["pipeline"]
    published = pipeline["counts"].get("published", 0)
    console.rule(f"demo finished: pipeline {pipeline['status']}, {published} posts published")
    return 0 if pipeline["status"] == "COMPLETED" and published > 0 else 1
