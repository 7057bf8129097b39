"""The company artifact reads over HTTP: fields, filters, paging and order; media downloads; tenancy, auth and
bad input."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import create_app
from models.db import Database
from models.enums import MediaKind, Platform, PublishState, Role
from models.media_store import media_path
from models.settings import Settings
from models.tables import BlogPost, BlogPostRevision, Company, MediaAsset, Persona, SocialPost, Topic
from tests.support.stack import Tenant, free_port, make_tenant, serving
from tests.support.stage_rows import add_dna, add_topic, new_company

PROBLEM = "application/problem+json"
BASE = datetime(2026, 3, 1, 9, tzinfo=UTC)
CITATIONS = [{"number": 1, "url": "https://news.example/acme-raises", "title": "Acme raises a seed round"}]


@dataclass
class Artifacts:
    """One company's worth of everything the pipeline makes, as written to the database."""

    tenant: Tenant
    company: Company
    personas: list[Persona]  # by position
    topics: dict[str, Topic]
    posts: dict[str, BlogPost]
    social: dict[str, SocialPost]
    media: dict[str, MediaAsset]
    files: dict[uuid.UUID, bytes]

    def path(self, template: str) -> str:
        return "/api/v1/companies/" + template.format(company=self.company.id, post=self.posts["new"].id)


@dataclass
class Api:
    http: httpx.AsyncClient
    settings: Settings
    mine: Artifacts
    theirs: Artifacts  # the same artifacts in another tenant
    empty: Company  # a company of `mine`'s tenant without artifacts

    async def get(
        self, path: str, *, tenant: Tenant | None = None, role: Role = Role.MARKETER, **params: Any
    ) -> httpx.Response:
        return await self.http.get(path, params=params, headers=(tenant or self.mine.tenant).headers(role))

    async def ok(self, template: str, **params: Any) -> Any:
        response = await self.get(self.mine.path(template), **params)
        assert response.status_code == 200, response.text
        return response.json()


async def make_artifacts(db: Database, tenant: Tenant, media_dir: Path) -> Artifacts:
    company = await new_company(db, tenant)
    await add_dna(db, company, version=1)
    await add_dna(db, company, version=2)
    scope: dict[str, Any] = {"tenant_id": tenant.id, "company_id": company.id}
    async with db.session() as session:
        # Written out of order: the list must come back by position.
        personas = [
            Persona(
                **scope,
                position=position,
                name=f"Persona {position}",
                role="Plant manager",
                details={"summary": f"no. {position}"},
                selected=position != 1,
            )
            for position in (2, 0, 1)
        ]
        session.add_all(personas)
        await session.commit()
    personas.sort(key=lambda persona: persona.position)
    first, _, third = personas
    topics = {
        "approved": await add_topic(db, first, "Halve your downtime", position=0, status="APPROVED"),
        "proposed": await add_topic(db, third, "Safer night shifts", position=1),
        "rejected": await add_topic(
            db, first, "Robots, broadly", month="2026-04", status="REJECTED", feedback="too broad"
        ),
    }
    topics["retry"] = await add_topic(
        db, first, "Robots for pick and place", month="2026-04", revision=1, previous_id=topics["rejected"].id
    )
    async with db.session() as session:
        posts = {
            "old": BlogPost(
                **scope,
                topic_id=topics["proposed"].id,
                title="Safer night shifts",
                slug="safer-night-shifts",
                created_at=BASE,
            ),
            "new": BlogPost(
                **scope,
                topic_id=topics["approved"].id,
                title="Halve your downtime",
                slug="halve-your-downtime",
                meta_description="How small plants cut downtime.",
                keywords=["downtime"],
                status="APPROVED",
                current_revision=2,
                target_words=2000,
                created_at=BASE + timedelta(hours=1),
            ),
        }
        session.add_all(posts.values())
        await session.flush()
        session.add_all(
            [
                BlogPostRevision(
                    tenant_id=tenant.id,
                    blog_post_id=posts["old"].id,
                    revision=1,
                    markdown="# Night shifts",
                    word_count=3,
                ),
                BlogPostRevision(
                    tenant_id=tenant.id,
                    blog_post_id=posts["new"].id,
                    revision=1,
                    markdown="# Downtime, draft",
                    word_count=3,
                    feedback="cite the survey",
                ),
                BlogPostRevision(
                    tenant_id=tenant.id,
                    blog_post_id=posts["new"].id,
                    revision=2,
                    markdown="# Downtime\n\nHalved [1].",
                    word_count=4,
                    citations=CITATIONS,
                ),
            ]
        )
        social = {
            "linkedin": SocialPost(
                **scope,
                blog_post_id=posts["new"].id,
                platform=Platform.LINKEDIN,
                text="Downtime, halved.",
                hashtags=["#ops"],
                image_prompt="a calm factory floor",
                publish_at=BASE + timedelta(days=2),
                publish_state=PublishState.SCHEDULED,
            ),
            "x": SocialPost(
                **scope,
                blog_post_id=posts["new"].id,
                platform=Platform.X,
                text="Halve it.",
                publish_at=BASE + timedelta(days=1),
                publish_state=PublishState.PUBLISHED,
                external_id="x-123",
                published_at=BASE + timedelta(days=1, seconds=3),
            ),
            "draft": SocialPost(
                **scope, blog_post_id=posts["old"].id, platform=Platform.INSTAGRAM, text="Nights, safer."
            ),
        }
        session.add_all(social.values())
        await session.flush()
        media = {
            "image": MediaAsset(
                **scope,
                social_post_id=social["linkedin"].id,
                kind=MediaKind.IMAGE,
                mime_type="image/png",
                path="",
                width=1200,
                height=627,
                alt_text="A calm factory floor",
                prompt="a calm factory floor",
                created_at=BASE,
            ),
            "video": MediaAsset(
                **scope,
                blog_post_id=posts["new"].id,
                kind=MediaKind.VIDEO,
                mime_type="video/mp4",
                path="",
                duration_seconds=8.0,
                created_at=BASE + timedelta(hours=1),
            ),
        }
        files = {}
        for asset in media.values():
            files[asset.id] = f"{asset.kind} of {company.name}".encode() + uuid.uuid4().bytes
            asset.path = media_path(tenant.id, asset.id, asset.mime_type)
            asset.size_bytes = len(files[asset.id])
            (media_dir / asset.path).parent.mkdir(parents=True, exist_ok=True)
            (media_dir / asset.path).write_bytes(files[asset.id])
        session.add_all(media.values())
        await session.commit()
    return Artifacts(tenant, company, personas, topics, posts, social, media, files)


@pytest.fixture(scope="module")
async def api(db: Database, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """The API without Temporal (reads need only the database), and two tenants' artifacts."""
    port, media_dir = free_port(), tmp_path_factory.mktemp("media")
    settings = Settings(
        database_url=database_url,
        temporal_address=f"127.0.0.1:{free_port()}",
        media_dir=media_dir,
        public_base_url=f"http://127.0.0.1:{port}",
        _env_file=None,  # type: ignore[call-arg]
    )
    mine = await make_artifacts(db, await make_tenant(db), media_dir)
    theirs = await make_artifacts(db, await make_tenant(db, name="Another tenant"), media_dir)
    empty = await new_company(db, mine.tenant)
    async with (
        serving(create_app(settings), port) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
    ):
        yield Api(http, settings, mine, theirs, empty)


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["data"]]


def strs(*rows: Any) -> list[str]:
    return [str(row.id) for row in rows]


async def test_dna_versions_newest_first(api: Api) -> None:
    page = await api.ok("{company}/dna/versions")
    assert page["count"] == 2 and [dna["version"] for dna in page["data"]] == [2, 1]
    assert len(page["data"][0]["dataPoints"]) == 32 and page["data"][0]["sources"][0]["url"].startswith("https://")
    assert (await api.ok("{company}/dna"))["version"] == 2


async def test_personas_by_position_and_selection(api: Api) -> None:
    personas = api.mine.personas
    page = await api.ok("{company}/personas")
    assert page["count"] == 3 and ids(page) == strs(*personas)
    first = page["data"][0]
    assert (
        first["name"] == "Persona 0" and first["role"] == "Plant manager" and first["details"] == {"summary": "no. 0"}
    )
    assert first["selected"] is True and first["isSample"] is False and first["jobId"] is None and first["createdAt"]
    assert ids(await api.ok("{company}/personas", selected="true")) == strs(personas[0], personas[2])
    assert ids(await api.ok("{company}/personas", selected="false")) == strs(personas[1])


async def test_topics_by_month_status_and_persona(api: Api) -> None:
    topics = api.mine.topics
    everything = await api.ok("{company}/topics")
    assert ids(everything) == strs(topics["approved"], topics["proposed"], topics["rejected"], topics["retry"])
    march = await api.ok("{company}/topics", month="2026-03")
    assert march["count"] == 2 and ids(march) == strs(topics["approved"], topics["proposed"])
    approved = march["data"][0]
    assert (
        approved["title"] == "Halve your downtime"
        and approved["status"] == "APPROVED"
        and approved["month"] == "2026-03"
    )
    assert approved["keywords"] == ["downtime", "predictive maintenance"] and approved["angle"].startswith("Downtime")
    assert (
        approved["personaId"] == str(api.mine.personas[0].id)
        and approved["revision"] == 0
        and approved["previousId"] is None
    )
    april = await api.ok("{company}/topics", month="2026-04")
    rejected, retry = april["data"]
    assert rejected["status"] == "REJECTED" and rejected["feedback"] == "too broad"
    assert retry["revision"] == 1 and retry["previousId"] == rejected["id"] and retry["status"] == "PROPOSED"
    assert ids(await api.ok("{company}/topics", status="REJECTED")) == [rejected["id"]]
    by_persona = await api.ok("{company}/topics", personaId=str(api.mine.personas[2].id))
    assert ids(by_persona) == strs(topics["proposed"])
    assert (await api.ok("{company}/topics", month="2026-05"))["count"] == 0


async def test_blog_posts_newest_first_with_revision_summaries(api: Api) -> None:
    posts = api.mine.posts
    page = await api.ok("{company}/blogposts")
    assert page["count"] == 2 and ids(page) == strs(posts["new"], posts["old"])
    new = page["data"][0]
    assert (
        new["title"] == "Halve your downtime" and new["slug"] == "halve-your-downtime" and new["status"] == "APPROVED"
    )
    assert new["metaDescription"] == "How small plants cut downtime." and new["keywords"] == ["downtime"]
    assert (
        new["currentRevision"] == 2
        and new["targetWords"] == 2000
        and new["topicId"] == str(api.mine.topics["approved"].id)
    )
    assert [(r["revision"], r["wordCount"], r["feedback"]) for r in new["revisions"]] == [
        (1, 3, "cite the survey"),
        (2, 4, None),
    ]
    assert "markdown" not in page["data"][0]["revisions"][0] and "markdown" not in new
    assert ids(await api.ok("{company}/blogposts", status="DRAFT")) == strs(posts["old"])
    assert ids(await api.ok("{company}/blogposts", topicId=str(api.mine.topics["approved"].id))) == strs(posts["new"])


async def test_a_blog_post_with_its_markdown_and_every_revision(api: Api) -> None:
    post = await api.ok("{company}/blogposts/{post}")
    assert post["id"] == str(api.mine.posts["new"].id) and post["currentRevision"] == 2
    assert post["markdown"] == "# Downtime\n\nHalved [1]." and post["citations"] == CITATIONS
    assert [(r["revision"], r["markdown"]) for r in post["revisions"]] == [
        (1, "# Downtime, draft"),
        (2, "# Downtime\n\nHalved [1]."),
    ]
    assert post["revisions"][0]["feedback"] == "cite the survey" and post["revisions"][0]["citations"] == []
    first = await api.ok("{company}/blogposts/{post}", revision=1)
    assert [r["revision"] for r in first["revisions"]] == [1] and first["markdown"] == post["markdown"]
    missing = await api.get(api.mine.path("{company}/blogposts/{post}"), revision=3)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    assert "revision 3" in missing.json()["detail"]


async def test_social_posts_in_publishing_order_with_state_and_images(api: Api) -> None:
    social, image = api.mine.social, api.mine.media["image"]
    page = await api.ok("{company}/social-posts")
    assert page["count"] == 3 and ids(page) == strs(social["x"], social["linkedin"], social["draft"])
    published, scheduled, draft = page["data"]
    assert (
        published["platform"] == "x" and published["publishState"] == "PUBLISHED" and published["externalId"] == "x-123"
    )
    assert datetime.fromisoformat(published["publishedAt"]) == BASE + timedelta(days=1, seconds=3)
    assert scheduled["publishState"] == "SCHEDULED" and datetime.fromisoformat(
        scheduled["publishAt"]
    ) == BASE + timedelta(days=2)
    assert (
        scheduled["text"] == "Downtime, halved."
        and scheduled["hashtags"] == ["#ops"]
        and scheduled["imagePrompt"] == "a calm factory floor"
    )
    assert scheduled["blogPostId"] == str(api.mine.posts["new"].id) and scheduled["publishError"] is None
    assert [m["id"] for m in scheduled["media"]] == [str(image.id)]
    assert scheduled["media"][0]["downloadUrl"] == f"{api.settings.public_base_url}/api/v1/media/{image.id}/file"
    assert draft["publishAt"] is None and draft["media"] == [] and published["media"] == []
    assert ids(await api.ok("{company}/social-posts", platform="linkedin")) == strs(social["linkedin"])
    assert ids(await api.ok("{company}/social-posts", publishState="DRAFT")) == strs(social["draft"])
    by_post = await api.ok("{company}/social-posts", blogPostId=str(api.mine.posts["new"].id))
    assert ids(by_post) == strs(social["x"], social["linkedin"])


async def test_media_newest_first_and_download_urls_serve_the_file_with_the_key(api: Api) -> None:
    image, video = api.mine.media["image"], api.mine.media["video"]
    page = await api.ok("{company}/media")
    assert page["count"] == 2 and ids(page) == strs(video, image)
    shown_video, shown_image = page["data"]
    assert (
        shown_video["kind"] == "video"
        and shown_video["mimeType"] == "video/mp4"
        and shown_video["durationSeconds"] == 8.0
    )
    assert shown_video["blogPostId"] == str(api.mine.posts["new"].id) and shown_video["socialPostId"] is None
    assert (shown_image["width"], shown_image["height"], shown_image["altText"]) == (1200, 627, "A calm factory floor")
    assert shown_image["sizeBytes"] == len(api.mine.files[image.id]) and shown_image["prompt"] == "a calm factory floor"
    assert "path" not in shown_image
    for shown in page["data"]:
        download = await api.http.get(shown["downloadUrl"], headers=api.mine.tenant.headers())
        assert download.status_code == 200 and download.content == api.mine.files[uuid.UUID(shown["id"])]
        assert download.headers["content-type"] == shown["mimeType"]
        without_key = await api.http.get(shown["downloadUrl"])
        assert without_key.status_code == 401 and without_key.headers["content-type"].startswith(PROBLEM)
        elsewhere = await api.http.get(shown["downloadUrl"], headers=api.theirs.tenant.headers())
        assert elsewhere.status_code == 404
    assert ids(await api.ok("{company}/media", kind="image")) == strs(image)
    assert ids(await api.ok("{company}/media", socialPostId=str(api.mine.social["linkedin"].id))) == strs(image)
    assert ids(await api.ok("{company}/media", blogPostId=str(api.mine.posts["new"].id))) == strs(video)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{company}/personas", lambda a: strs(*a.personas)),
        ("{company}/topics", lambda a: strs(*a.topics.values())),
        ("{company}/social-posts", lambda a: strs(a.social["x"], a.social["linkedin"], a.social["draft"])),
    ],
)
async def test_pages_keep_the_count_and_the_order(api: Api, template: str, expected: Any) -> None:
    order = expected(api.mine)
    pages = [await api.ok(template, limit=1, offset=offset) for offset in range(len(order) + 1)]
    assert [page["count"] for page in pages] == [len(order)] * len(pages)
    assert [item for page in pages for item in ids(page)] == order
    assert pages[0]["limit"] == 1 and pages[-1]["offset"] == len(order) and pages[-1]["data"] == []


ROUTES = [
    "{company}/dna",
    "{company}/dna/versions",
    "{company}/personas",
    "{company}/topics?month=2026-03",
    "{company}/blogposts",
    "{company}/blogposts/{post}",
    "{company}/social-posts",
    "{company}/media",
]


@pytest.mark.parametrize("template", ROUTES)
async def test_auth_and_tenancy_for_every_route(api: Api, template: str) -> None:
    """401 without a valid key; every role may read (there is no 403 for a valid key: all are marketers or above);
    another tenant gets 404 and nothing of the company, with and without the trailing slash."""
    path = api.mine.path(template)
    for headers in ({}, {"Authorization": "Bearer cpk_nope"}, {"Authorization": "Basic eDp5"}):
        refused = await api.http.get(path, headers=headers)
        assert refused.status_code == 401 and refused.headers["content-type"].startswith(PROBLEM), headers
        assert refused.headers["www-authenticate"] == "Bearer"
    for role in Role:
        assert (await api.get(path, role=role)).status_code == 200, role
        slash = path.replace("?", "/?") if "?" in path else path + "/"
        assert (await api.get(slash, role=role)).status_code == 200, role
        stranger = await api.get(path, tenant=api.theirs.tenant, role=role)
        assert stranger.status_code == 404 and stranger.headers["content-type"].startswith(PROBLEM), role
        body = stranger.json()
        assert set(body) == {"type", "title", "status", "detail"} and str(api.mine.company.id) not in stranger.text
    unknown = await api.get(path.replace(str(api.mine.company.id), str(uuid.uuid4())))
    assert unknown.status_code == 404 and unknown.json()["detail"] == "the company was not found"


async def test_a_blog_post_is_404_outside_its_company_and_tenant(api: Api) -> None:
    theirs = f"/api/v1/companies/{api.mine.company.id}/blogposts/{api.theirs.posts['new'].id}"
    other_company = f"/api/v1/companies/{api.empty.id}/blogposts/{api.mine.posts['new'].id}"
    unknown = f"/api/v1/companies/{api.mine.company.id}/blogposts/{uuid.uuid4()}"
    for path in (theirs, other_company, unknown):
        response = await api.get(path)
        assert response.status_code == 404 and response.json()["detail"] == "the blog post was not found", path
        assert "markdown" not in response.text


async def test_another_tenants_ids_as_filters_find_nothing(api: Api) -> None:
    theirs = api.theirs
    filters = [
        ("{company}/topics", {"personaId": theirs.personas[0].id}),
        ("{company}/blogposts", {"topicId": theirs.topics["approved"].id}),
        ("{company}/social-posts", {"blogPostId": theirs.posts["new"].id}),
        ("{company}/media", {"socialPostId": theirs.social["linkedin"].id}),
        ("{company}/media", {"blogPostId": theirs.posts["new"].id}),
    ]
    for template, params in filters:
        page = await api.ok(template, **params)
        assert page == {"data": [], "count": 0, "limit": 50, "offset": 0}, (template, params)


@pytest.mark.parametrize(
    "template", [route.split("?")[0] for route in ROUTES if "{post}" not in route and route != "{company}/dna"]
)
async def test_a_company_without_artifacts_has_empty_pages(api: Api, template: str) -> None:
    response = await api.get(f"/api/v1/companies/{api.empty.id}/" + template.removeprefix("{company}/"))
    assert response.status_code == 200 and response.json() == {"data": [], "count": 0, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    ("template", "params", "field"),
    [
        ("{company}/topics", {"month": "2026-13"}, "query.month"),
        ("{company}/topics", {"month": "March"}, "query.month"),
        ("{company}/topics", {"status": "DONE"}, "query.status"),
        ("{company}/topics", {"personaId": "nope"}, "query.personaId"),
        ("{company}/personas", {"selected": "maybe"}, "query.selected"),
        ("{company}/blogposts", {"status": "PUBLISHED"}, "query.status"),
        ("{company}/blogposts", {"topicId": "42"}, "query.topicId"),
        ("{company}/blogposts/{post}", {"revision": "0"}, "query.revision"),
        ("{company}/blogposts/not-a-uuid", {}, "path.blog_post_id"),
        ("{company}/social-posts", {"platform": "myspace"}, "query.platform"),
        ("{company}/social-posts", {"publishState": "sent"}, "query.publishState"),
        ("{company}/media", {"kind": "audio"}, "query.kind"),
        ("{company}/media", {"limit": "0"}, "query.limit"),
        ("{company}/dna/versions", {"offset": "-1"}, "query.offset"),
        ("not-a-uuid/media", {}, "path.company_id"),
    ],
)
async def test_bad_input_is_a_422_problem_naming_the_field(
    api: Api, template: str, params: dict[str, Any], field: str
) -> None:
    response = await api.get(api.mine.path(template), **params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert problem["status"] == 422 and field in problem["detail"]
    assert [error["field"] for error in problem["errors"]] == [field]


async def test_openapi_documents_every_artifact_route(api: Api) -> None:
    document = (await api.http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key made with `content-pipeline apikey create`.",
    }
    for template in ROUTES:
        path = "/api/v1/companies/" + template.split("?")[0].format(company="{company_id}", post="{blog_post_id}")
        operation = document["paths"][path]["get"]
        assert operation["summary"] and operation["security"] == [{"HTTPBearer": []}], path
        assert "$ref" in str(operation["responses"]["200"]["content"]["application/json"]["schema"]), path
        for status in ("401", "403", "404", "422"):
            assert operation["responses"][status]["content"][PROBLEM]["schema"] == {
                "$ref": "#/components/schemas/ProblemDetail"
            }
        if template != "{company}/dna":
            assert operation["description"] and "tags" in operation and operation["tags"] == ["artifacts"], path
        assert path + "/" not in document["paths"]
    schemas = document["components"]["schemas"]
    assert "Authorization" in schemas["MediaPublic"]["properties"]["downloadUrl"]["description"]
    assert schemas["TopicPublic"]["properties"]["month"]["examples"] == ["2026-03"]
    topics = document["paths"]["/api/v1/companies/{company_id}/topics"]["get"]["parameters"]
    month = next(p for p in topics if p["name"] == "month")
    assert month["schema"]["anyOf"][0]["pattern"] == r"^\d{4}-(0[1-9]|1[0-2])$"
