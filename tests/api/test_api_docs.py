"""The API's documentation pages work without internet: Swagger UI at /docs and ReDoc at /redoc load every script,
stylesheet and icon from the app itself, and both read the app's own /openapi.json."""

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from api.main import create_app
from models.settings import Settings

BASE_URL = "http://testserver"
# What a browser would fetch for the page: scripts, stylesheets, icons, images.
FETCHED = {("script", "src"), ("link", "href"), ("img", "src")}
# A real bundle, not a stub or an error page (Swagger UI's script is over a megabyte).
NON_TRIVIAL_BYTES = 1000


class Assets(HTMLParser):
    """The URLs a page makes the browser fetch, with what kind of thing each is."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (kind, url)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name, attribute in FETCHED:
            url = values.get(attribute)
            if tag == name and url:
                kind = "icon" if "icon" in (values.get("rel") or "") else "stylesheet" if tag == "link" else tag
                self.found.append((kind, url))


EXPECTED_TYPES = {"script": "javascript", "stylesheet": "text/css", "icon": "image/", "img": "image/"}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # The pages need neither the database nor Temporal: the app is called in-process, without its lifespan.
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", data_dir=tmp_path, _env_file=None)
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


def external_urls(text: str) -> list[str]:
    return [url for url in re.findall(r"https?://[^\s'\"<>)]+", text) if not url.startswith(BASE_URL)]


async def check_page(http: httpx.AsyncClient, path: str) -> list[tuple[str, str]]:
    """The page answers HTML that names no other host, and every asset it loads comes from the app."""
    page = await http.get(path)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert external_urls(page.text) == []
    parser = Assets()
    parser.feed(page.text)
    assert {kind for kind, _ in parser.found} >= {"script", "icon"}, parser.found
    for kind, url in parser.found:
        asset = await http.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert EXPECTED_TYPES[kind] in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > NON_TRIVIAL_BYTES, (url, len(asset.content))
    return parser.found


async def test_swagger_ui_loads_from_the_app_and_reads_its_openapi_document(http: httpx.AsyncClient) -> None:
    found = await check_page(http, "/docs")
    assert {kind for kind, _ in found} == {"script", "stylesheet", "icon"}
    page = (await http.get("/docs")).text
    assert re.search(r"url: '/openapi\.json'", page), page
    # No call to swagger.io's online validator from an air-gapped browser.
    assert '"validatorUrl": null' in page
    assert (await http.get("/openapi.json")).status_code == 200
    redirect = await http.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200 and external_urls(redirect.text) == []


async def test_redoc_loads_from_the_app_and_reads_its_openapi_document(http: httpx.AsyncClient) -> None:
    await check_page(http, "/redoc")
    page = (await http.get("/redoc")).text
    assert 'spec-url="/openapi.json"' in page


async def test_the_docs_pages_are_not_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
