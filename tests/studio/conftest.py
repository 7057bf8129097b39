"""Fixtures of the studio's browser tests: one headless Chromium for the session (Debian's, see
tests/support/browser.py), and per test a fresh context (no cookies shared between tests) and a page on the
running stack. A missing Chromium fails the tests that need it, with what to install; they are never skipped."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Error, Page, expect

from tests.support.browser import DESKTOP, MISSING_BROWSER, OpenContext, chromium_installed, launched_chromium
from tests.support.stack import RunningStack

# Auto-waiting expectations and actions wait this long by default; the machine is shared and slow at times, and
# nothing here is timed. Waits on the pipeline itself pass longer timeouts.
EXPECT_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 30_000
NAVIGATION_TIMEOUT_MS = 60_000

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not chromium_installed():
        pytest.fail(MISSING_BROWSER, pytrace=False)  # never a skip: `make test` installs it (ensure_browser.sh)
    async with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
async def open_context(browser: Browser, stack: RunningStack) -> AsyncIterator[OpenContext]:
    """Opens fresh browser contexts on the stack's base URL (1280x900 unless `viewport` says otherwise); each one is
    closed after the test, and an uncaught script error on any of their pages fails the test."""
    opened: list[BrowserContext] = []
    page_errors: list[str] = []

    async def open_one(**options: Any) -> BrowserContext:
        context = await browser.new_context(**{"base_url": stack.base_url, "viewport": DESKTOP, **options})
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
        context.on("weberror", lambda error: page_errors.append(f"{error.page and error.page.url}: {error.error}"))
        opened.append(context)
        return context

    yield open_one
    for context in opened:
        try:
            await context.close()
        except Error:
            pass
    assert not page_errors, f"uncaught script errors on the studio's pages: {page_errors}"


@pytest.fixture
async def context(open_context: OpenContext) -> BrowserContext:
    return await open_context()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()
