"""Company search first: GET /api/v1/companies/lookup through its workflow and activity on the real stack.

Offline (the default stack) it answers three marked samples. With Google's keys it asks a local fake of the
Custom Search JSON API (`GET /customsearch/v1`, the documented cse.list answer: items with title, link,
displayLink, snippet and pagemap metatags): one candidate per website, a 429 tried again, a 5xx given up after
the retries, a 403 daily limit refused at once; each failure a 502 that says why and never shows the key. With a
research provider (Perplexity, the local protocol server) the candidates come from its grounded search. Unit tests
read Google's answers and the research answer without a server. Nothing here reaches the internet.
"""

import asyncio
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.deps import StageDeps
from activities.lookup import (
    candidates_from_google,
    google_failure,
    research_candidates,
    sample_candidates,
)
from api.deps import Principal
from api.errors import Problem
from api.main import create_app
from api.services.company_lookup import lookup_companies
from models.db import Database
from models.enums import Role, Tier
from models.generation import SAMPLE_MARKER, ResearchResult, Source
from models.lookup import CompanyCandidate, LookupErrorType, deduplicated
from models.settings import Settings
from providers.base import AIAuthError, BaseProvider, WorkKind
from providers.router import ProviderRouter
from providers.structured import SchemaArg
from tests.support.provider_fixtures import provider_server_session_fixture  # noqa: F401
from tests.support.provider_server import CHAT, ProviderServer, Reply, chat_completion
from tests.support.stack import RunningStack, Tenant, running_stack, serving
from worker import build_workers

LOOKUP = "/api/v1/companies/lookup"
PROBLEM = "application/problem+json"
GOOGLE_KEY = "AIza-test-google-key-SECRET-0123456789"
ENGINE_ID = "0123456789abcdef0:test"


# ---- a local fake of Google's Custom Search JSON API -------------------------------------------------------------


def cse_item(title: str, link: str, snippet: str, metatags: dict[str, str] | None = None) -> dict[str, Any]:
    """One `items[]` entry as cse.list documents it."""
    host = link.split("/")[2]
    item: dict[str, Any] = {
        "kind": "customsearch#result",
        "title": title,
        "htmlTitle": title.replace("Acme", "<b>Acme</b>"),
        "link": link,
        "displayLink": host,
        "snippet": snippet,
        "htmlSnippet": snippet,
        "formattedUrl": link,
        "htmlFormattedUrl": link,
    }
    if metatags is not None:
        item["pagemap"] = {"metatags": [metatags]}
    return item


ACME_ITEMS = [
    cse_item(
        "Acme Robotics | Robots for small factories",
        "https://www.acme-robotics.example/",
        "Acme Robotics builds collaborative robots ...\nfor small factories.",
        {
            "og:site_name": "Acme Robotics",
            "og:description": "Collaborative robots for small factories.",
            "og:country-name": "Czech Republic",
            "og:type": "website",
        },
    ),
    # The same company's About page: the same website once "www." is set aside.
    cse_item("About us - Acme Robotics", "https://acme-robotics.example/about", "Founded in Brno in 2015 ..."),
    cse_item(
        "Acme Robotics GmbH - Industrieautomation",
        "https://acme-robotik.example.de/kontakt?ref=search",
        "Acme Robotics GmbH, Industrieautomation aus Stuttgart.",
        {"og:locale": "de_DE"},
    ),
    cse_item(
        "ACME Robotics Inc. \u2013 Warehouse robots",
        "http://acmerobotics.example:8080/en/",
        "Warehouse robots made in Ohio.",
        {"og:description": "Autonomous warehouse robots.", "og:site_name": "  ACME   Robotics Inc.  "},
    ),
    {"kind": "customsearch#result", "title": "A result without a link"},
    cse_item("Acme file", "ftp://files.example/acme.pdf", "not a web page"),
]


def cse_answer(query: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The cse.list response body around `items`."""
    return {
        "kind": "customsearch#search",
        "url": {"type": "application/json", "template": "https://www.googleapis.com/customsearch/v1?q={searchTerms}"},
        "queries": {
            "request": [
                {"title": "Google Custom Search - " + query, "totalResults": str(len(items)), "searchTerms": query}
            ]
        },
        "context": {"title": "Companies"},
        "searchInformation": {
            "searchTime": 0.21,
            "formattedSearchTime": "0.21",
            "totalResults": str(len(items)),
            "formattedTotalResults": str(len(items)),
        },
        **({"items": items} if items else {}),
    }


def google_error(code: int, status: str, message: str, reason: str, domain: str = "usageLimits") -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": status,
        }
    }


DAILY_LIMIT = google_error(403, "PERMISSION_DENIED", "Daily Limit Exceeded", "dailyLimitExceeded")
RATE_LIMITED = google_error(
    429,
    "RESOURCE_EXHAUSTED",
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
    "rateLimitExceeded",
)
BACKEND_ERROR = google_error(503, "UNAVAILABLE", "Backend Error", "backendError", domain="global")
BAD_KEY = {
    "error": {
        "code": 400,
        "message": "API key not valid. Please pass a valid API key.",
        "errors": [
            {"message": "API key not valid. Please pass a valid API key.", "domain": "global", "reason": "badRequest"}
        ],
        "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    }
}


@dataclass
class FakeGoogle:
    """Answers `GET /customsearch/v1` per query: scripted replies first (status, body, headers), then results."""

    base_url: str = ""
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scripts: dict[str, deque[tuple[int, Any, dict[str, str]]]] = field(default_factory=dict)
    always: dict[str, tuple[int, Any]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)

    def asked(self, query: str) -> int:
        return sum(1 for params in self.requests if params.get("q") == query)

    async def search(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(params)
        if params.get("key") != GOOGLE_KEY:
            return JSONResponse(BAD_KEY, status_code=400)
        if params.get("cx") != ENGINE_ID or params.get("num") != "10":
            error = google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "badRequest")
            return JSONResponse(error, status_code=400)
        query = params.get("q", "")
        script = self.scripts.get(query)
        if script:
            status, body, headers = script.popleft()
            return JSONResponse(body, status_code=status, headers=headers)
        if query in self.always:
            status, body = self.always[query]
            return JSONResponse(body, status_code=status)
        return JSONResponse(cse_answer(query, self.results.get(query, [])))

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/customsearch/v1", self.search, methods=["GET"])])


@pytest.fixture(scope="module")
async def google() -> AsyncIterator[FakeGoogle]:
    fake = FakeGoogle()
    async with serving(fake.app()) as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture(scope="module")
async def google_stack(
    database_url: str, dev_temporal: WorkflowEnvironment, google: FakeGoogle
) -> AsyncIterator[RunningStack]:
    async with running_stack(
        database_url,
        dev_temporal.client,
        google_search_api_key=GOOGLE_KEY,
        google_search_engine_id=ENGINE_ID,
        google_search_base_url=google.base_url,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def perplexity(provider_server_session: ProviderServer) -> ProviderServer:
    """The provider tests' local protocol server, speaking for Perplexity here (each test resets it)."""
    return provider_server_session


@pytest.fixture(scope="module")
async def research_stack(
    database_url: str, dev_temporal: WorkflowEnvironment, perplexity: ProviderServer
) -> AsyncIterator[RunningStack]:
    """The API and the workers with Perplexity as the research provider (running_stack is always offline)."""
    settings = Settings(
        database_url=database_url,
        temporal_address=dev_temporal.client.service_client.config.target_host,
        task_queue_suffix=f"-research-{uuid.uuid4().hex[:8]}",
        ai_provider="perplexity",
        perplexity_api_key="pplx-test-key-SECRET",
        perplexity_base_url=perplexity.base_url,
        _env_file=None,  # type: ignore[call-arg]
    )
    db = Database.from_url(database_url, pool_size=2)
    router = ProviderRouter.from_settings(settings, db=db)
    workers = build_workers(dev_temporal.client, StageDeps(db=db, router=router, settings=settings), settings)
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        async with (
            serving(create_app(settings)) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        ):
            yield RunningStack(settings=settings, client=dev_temporal.client, base_url=base_url, http=http)
    finally:
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)
        await router.close()
        await db.close()


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# ---- over HTTP ---------------------------------------------------------------------------------------------------


async def test_offline_answers_three_marked_samples(stack: RunningStack, tenant: Tenant) -> None:
    response = await stack.http.get(LOOKUP, params={"q": "  Acme   Coffee "}, headers=tenant.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "offline"
    candidates = body["candidates"]
    assert len(candidates) == 3
    assert candidates[0] == {
        "name": "Acme Coffee (sample)",
        "website": "https://acme-coffee.example",
        "country": "United States",
        "description": candidates[0]["description"],
        "source": None,
    }
    for candidate in candidates:
        assert candidate["name"].endswith("(sample)")
        assert candidate["website"].startswith("https://acme-coffee") and candidate["website"].endswith(".example")
        assert candidate["description"].startswith(SAMPLE_MARKER)
    assert len({c["website"] for c in candidates}) == 3
    # The trailing-slash twin answers too, and every role of the tenant may search.
    again = await stack.http.get(LOOKUP + "/", params={"q": "Acme Coffee"}, headers=tenant.headers(Role.ADMIN))
    assert again.status_code == 200 and again.json() == body


async def test_a_bad_query_is_422_and_no_key_is_401(stack: RunningStack, tenant: Tenant) -> None:
    for params in ({"q": "A"}, {"q": "   a   "}, {"q": "x" * 201}, {}, {"q": "ab\x00"}):
        problem = assert_problem(await stack.http.get(LOOKUP, params=params, headers=tenant.headers()), 422)
        assert [error["field"] for error in problem["errors"]] == ["query.q"], problem
    assert (await stack.http.get(LOOKUP, params={"q": "x" * 200}, headers=tenant.headers())).status_code == 200

    no_key = assert_problem(await stack.http.get(LOOKUP, params={"q": "Acme"}), 401)
    assert "API key" in no_key["detail"]
    # Without a key the query is not even looked at.
    assert_problem(await stack.http.get(LOOKUP, params={"q": "A"}), 401)
    bad = {"Authorization": "Bearer cpk_00000000_not-a-key"}
    assert_problem(await stack.http.get(LOOKUP, params={"q": "Acme"}, headers=bad), 401)


async def test_lookup_is_not_taken_for_a_company_id(stack: RunningStack, tenant: Tenant) -> None:
    """/companies/lookup is routed before /companies/{company_id}, which would answer 422 for "lookup"."""
    response = await stack.http.get(LOOKUP, params={"q": "Acme"}, headers=tenant.headers())
    assert response.status_code == 200 and "candidates" in response.json()
    assert (await stack.http.get(f"/api/v1/companies/{uuid.uuid4()}", headers=tenant.headers())).status_code == 404


async def test_google_candidates_one_per_website(
    google_stack: RunningStack, google: FakeGoogle, tenant: Tenant
) -> None:
    google.results["Acme Robotics"] = ACME_ITEMS
    response = await google_stack.http.get(LOOKUP, params={"q": "Acme Robotics"}, headers=tenant.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "google"
    assert body["candidates"] == [
        {
            "name": "Acme Robotics",
            "website": "https://www.acme-robotics.example",
            "country": "Czech Republic",
            "description": "Collaborative robots for small factories.",
            "source": "https://www.acme-robotics.example/",
        },
        {
            "name": "Acme Robotics GmbH",
            "website": "https://acme-robotik.example.de",
            "country": None,
            "description": "Acme Robotics GmbH, Industrieautomation aus Stuttgart.",
            "source": "https://acme-robotik.example.de/kontakt?ref=search",
        },
        {
            "name": "ACME Robotics Inc.",
            "website": "http://acmerobotics.example:8080",
            "country": None,
            "description": "Autonomous warehouse robots.",
            "source": "http://acmerobotics.example:8080/en/",
        },
    ]
    asked = [params for params in google.requests if params.get("q") == "Acme Robotics"]
    assert len(asked) == 1 and asked[0]["num"] == "10" and asked[0]["cx"] == ENGINE_ID

    # No result at all: an empty list, not an error.
    empty = await google_stack.http.get(LOOKUP, params={"q": "Nothing Matches"}, headers=tenant.headers())
    assert empty.status_code == 200 and empty.json() == {"candidates": [], "source": "google"}


async def test_google_rate_limit_is_tried_again(google_stack: RunningStack, google: FakeGoogle, tenant: Tenant) -> None:
    google.results["Busy Robotics"] = [ACME_ITEMS[0]]
    google.scripts["Busy Robotics"] = deque([(429, RATE_LIMITED, {"Retry-After": "1"})])
    response = await google_stack.http.get(LOOKUP, params={"q": "Busy Robotics"}, headers=tenant.headers())
    assert response.status_code == 200, response.text
    assert [c["name"] for c in response.json()["candidates"]] == ["Acme Robotics"]
    assert google.asked("Busy Robotics") == 2


async def test_google_daily_limit_is_a_502_at_once(
    google_stack: RunningStack, google: FakeGoogle, tenant: Tenant
) -> None:
    google.always["Quota Robotics"] = (403, DAILY_LIMIT)
    response = await google_stack.http.get(LOOKUP, params={"q": "Quota Robotics"}, headers=tenant.headers())
    problem = assert_problem(response, 502)
    assert "dailyLimitExceeded" in problem["detail"] and "daily query quota" in problem["detail"], problem
    assert problem["errorType"] == LookupErrorType.SEARCH_REJECTED
    assert GOOGLE_KEY not in response.text
    assert google.asked("Quota Robotics") == 1  # a refusal is final: never asked again


async def test_google_failing_is_a_502_after_the_retries(
    google_stack: RunningStack, google: FakeGoogle, tenant: Tenant
) -> None:
    google.always["Down Robotics"] = (503, BACKEND_ERROR)
    response = await google_stack.http.get(LOOKUP, params={"q": "Down Robotics"}, headers=tenant.headers())
    problem = assert_problem(response, 502)
    assert "after its retries" in problem["detail"] and "backendError" in problem["detail"], problem
    assert GOOGLE_KEY not in response.text
    assert google.asked("Down Robotics") == 3


async def test_research_provider_finds_the_candidates(
    research_stack: RunningStack, perplexity: ProviderServer, tenant: Tenant
) -> None:
    perplexity.reset()
    answer = {
        "companies": [
            {
                "name": "Acme Robotics",
                "website": "https://www.acme-robotics.example/en/home",
                "country": "Czech Republic",
                "description": "Collaborative robots for small factories.",
                "source_url": "https://news.example/acme-robotics",
            },
            {"name": "Acme Robotics s.r.o.", "website": "acme-robotics.example", "country": None, "description": ""},
            {"name": "Acme Robot Works", "website": None, "country": "Germany", "description": "Robot cells."},
        ]
    }
    content = "Here is what I found:\n```json\n" + json.dumps(answer) + "\n```"
    perplexity.queue(CHAT, Reply(json=chat_completion(content, citations=["https://news.example/acme-robotics"])))
    response = await research_stack.http.get(LOOKUP, params={"q": "Acme Robotics"}, headers=tenant.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "research"
    assert body["candidates"] == [
        {
            "name": "Acme Robotics",
            "website": "https://www.acme-robotics.example",
            "country": "Czech Republic",
            "description": "Collaborative robots for small factories.",
            "source": "https://news.example/acme-robotics",
        },
        {
            "name": "Acme Robot Works",
            "website": None,
            "country": "Germany",
            "description": "Robot cells.",
            "source": None,
        },
    ]
    asked = perplexity.requests_for(CHAT)
    assert len(asked) == 1 and "Acme Robotics" in asked[0].prompt_text


# ---- the service's answers when Temporal cannot help -----------------------------------------------------------


async def test_no_worker_answering_is_a_504(stack: RunningStack, tenant: Tenant) -> None:
    nobody = Settings(task_queue_suffix=f"-nobody-{uuid.uuid4().hex[:8]}", _env_file=None)  # type: ignore[call-arg]
    principal = Principal(tenant_id=tenant.id, tier=Tier.FREE, role=Role.MARKETER, key_id=uuid.uuid4())
    with pytest.raises(Problem) as raised:
        await lookup_companies(stack.client, nobody, principal, "Acme", wait_seconds=1)
    assert raised.value.status == 504 and "no worker answered" in raised.value.detail


# ---- units: Google's answers, samples, the research answer -----------------------------------------------------


def test_google_answer_is_read_as_documented() -> None:
    found = candidates_from_google(cse_answer("Acme Robotics", ACME_ITEMS))
    assert [c.website for c in found] == [
        "https://www.acme-robotics.example",
        "https://acme-robotics.example",
        "https://acme-robotik.example.de",
        "http://acmerobotics.example:8080",
    ]
    assert [c.name for c in found] == ["Acme Robotics", "About us", "Acme Robotics GmbH", "ACME Robotics Inc."]
    assert found[1].description == "Founded in Brno in 2015 ..." and found[1].source.endswith("/about")  # type: ignore[union-attr]
    assert found[0].description == "Collaborative robots for small factories." and found[0].country == "Czech Republic"
    assert [c.name for c in deduplicated(found)] == ["Acme Robotics", "Acme Robotics GmbH", "ACME Robotics Inc."]
    assert candidates_from_google(cse_answer("nothing", [])) == []
    assert candidates_from_google({"error": "odd"}) == [] and candidates_from_google(["odd"]) == []
    # A title alone names the candidate; a link alone names it by its host.
    bare = candidates_from_google(
        {"items": [{"link": "https://bare.example/x"}, {"title": "T", "link": "https://t.example"}]}
    )
    assert [(c.name, c.description) for c in bare] == [("bare.example", ""), ("T", "")]


def test_deduplication_keeps_ten_and_the_first_per_host() -> None:
    many = [CompanyCandidate(name=f"Company {n}", website=f"https://www.c{n % 12}.example/page{n}") for n in range(30)]
    kept = deduplicated(many)
    assert len(kept) == 10 and [c.name for c in kept] == [f"Company {n}" for n in range(10)]
    no_site = [CompanyCandidate(name="Same"), CompanyCandidate(name=" same "), CompanyCandidate(name="Other")]
    assert [c.name for c in deduplicated(no_site)] == ["Same", "Other"]


def test_google_errors_are_typed_and_never_show_the_key() -> None:
    daily = google_failure(403, DAILY_LIMIT, key=GOOGLE_KEY)
    assert (
        daily.type == LookupErrorType.SEARCH_REJECTED and daily.non_retryable and "daily query quota" in daily.message
    )
    limited = google_failure(429, RATE_LIMITED, "3")
    assert limited.type == LookupErrorType.SEARCH_UNAVAILABLE and not limited.non_retryable
    assert limited.next_retry_delay is not None and limited.next_retry_delay.total_seconds() == 3
    assert google_failure(429, RATE_LIMITED, "3600").next_retry_delay.total_seconds() == 5  # type: ignore[union-attr]
    # A 429 about the day's quota will not clear in seconds: refused, not retried.
    per_day = google_error(
        429, "RESOURCE_EXHAUSTED", "Quota exceeded for metric 'Queries per day'.", "rateLimitExceeded"
    )
    assert google_failure(429, per_day).non_retryable
    assert not google_failure(500, "<html>oops</html>").non_retryable
    bad_key = google_failure(400, BAD_KEY, key=GOOGLE_KEY)
    assert bad_key.non_retryable and "GOOGLE_SEARCH_API_KEY is not valid" in bad_key.message
    echoed = google_failure(403, {"error": {"message": f"key {GOOGLE_KEY} is blocked", "errors": []}}, key=GOOGLE_KEY)
    assert GOOGLE_KEY not in echoed.message and "***" in echoed.message


def test_samples_are_marked() -> None:
    samples = sample_candidates("Žluťoučký kůň")
    assert [c.website for c in samples] == [
        "https://zlutoucky-kun.example",
        "https://zlutoucky-kun-group.example",
        "https://zlutoucky-kun-labs.example",
    ]
    assert all(c.name.endswith(" (sample)") and c.description.startswith(SAMPLE_MARKER) for c in samples)
    long = sample_candidates("x" * 200)
    assert all(len(c.name) <= 200 for c in long)
    assert sample_candidates("!!")[0].website == "https://company.example"


class ScriptedResearch(BaseProvider):
    """A research provider answering from a script: the research text, then the JSON of an extraction."""

    name = "scripted"
    kinds = frozenset({WorkKind.RESEARCH, WorkKind.JSON, WorkKind.TEXT})

    def __init__(self, research: str, extraction: str = "", error: Exception | None = None) -> None:
        super().__init__(None, "scripted-1")
        self.research_text = research
        self.extraction = extraction
        self.error = error
        self.prompts: list[str] = []

    async def research(
        self, query: str, *, sample_context: dict[str, Any] | None = None, **options: Any
    ) -> ResearchResult:
        self.prompts.append(query)
        if self.error is not None:
            raise self.error
        return ResearchResult(text=self.research_text, sources=[Source(url="https://news.example/acme", title="News")])

    async def _complete(
        self,
        prompt: str,
        *,
        kind: WorkKind,
        schema: SchemaArg | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sample_context: dict[str, Any] | None = None,
        repair: bool = False,
    ) -> str:
        self.prompts.append(prompt)
        return self.extraction


def router_of(provider: BaseProvider) -> ProviderRouter:
    return ProviderRouter({WorkKind.RESEARCH: [provider], WorkKind.JSON: [provider], WorkKind.TEXT: [provider]})


async def test_research_prose_is_extracted_in_a_second_call() -> None:
    extraction = json.dumps({"companies": [{"name": "Acme Robotics", "website": "https://acme.example/x"}]})
    provider = ScriptedResearch("Acme Robotics (https://acme.example) makes robots [1].", extraction)
    found = await research_candidates(router_of(provider), "Acme")
    assert found == [CompanyCandidate(name="Acme Robotics", website="https://acme.example")]
    assert len(provider.prompts) == 2 and "[1] News - https://news.example/acme" in provider.prompts[1]


async def test_research_failures_keep_their_type() -> None:
    provider = ScriptedResearch("", error=AIAuthError("invalid API key", provider="scripted", model="scripted-1"))
    with pytest.raises(ApplicationError) as raised:
        await research_candidates(router_of(provider), "Acme")
    assert raised.value.type == "AIAuthError" and raised.value.non_retryable
    assert "invalid API key" in raised.value.message
