"""A real browser for the studio's tests: Debian's Chromium at /usr/bin/chromium driven by Playwright's async API
(Playwright never downloads a browser here), and an accessibility check with the vendored axe-core.

`tests/support/ensure_browser.sh` installs Chromium for `make test`; without it the browser tests fail with
MISSING_BROWSER, they are never skipped.
"""

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Headless without a GPU or a sandbox (tests run as root in containers), and no background traffic: this machine's
# closed network refuses Chromium's own connections (updates, sync, field trials), which would otherwise stall it.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING_BROWSER = (
    "The studio's browser tests need Chromium: run `sudo apt-get install chromium` (Debian) and run make test again."
)

DESKTOP = ViewportSize(width=1280, height=900)  # a context's default (the screenshots are this wide)
PHONE = ViewportSize(width=390, height=844)

# The studio's conftest's `open_context` fixture: a fresh context on the stack, `browser.new_context` options.
OpenContext = Callable[..., Awaitable[BrowserContext]]

VENDOR = Path(__file__).parent / "vendor"
AXE = VENDOR / "axe-core-4.14.1.min.js"  # MPL-2.0, see vendor/axe-core-LICENSE.txt
BLOCKING_IMPACTS = ("serious", "critical")


class BrowserMissing(RuntimeError):
    """/usr/bin/chromium is not installed."""

    def __init__(self) -> None:
        super().__init__(MISSING_BROWSER)


def chromium_installed() -> bool:
    return CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)


@contextlib.asynccontextmanager
async def launched_chromium(**options: Any) -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, until the block ends; BrowserMissing when it is not installed."""
    if not chromium_installed():
        raise BrowserMissing()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, **options
        )
        try:
            yield browser
        finally:
            await browser.close()


AXE_RUN = """async () => {
    const results = await axe.run(document, {resultTypes: ['violations']});
    return results.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map(n => ({target: n.target, summary: n.failureSummary || ''})),
    }));
}"""


def describe_violations(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"]:
            first, *rest = [line.strip() for line in str(node["summary"]).splitlines() if line.strip()] or [""]
            summary = f"{first} {'; '.join(rest)}".strip()
            lines.append(f"    at {node['target']}: {summary}")
    return "\n".join(lines)


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Every axe-core violation on the page as it is now (each with its id, impact, help and nodes' targets)."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=AXE)
    violations: list[dict[str, Any]] = await page.evaluate(AXE_RUN)
    return violations


async def assert_accessible(page: Page) -> None:
    """Fails with the list of axe-core violations of impact serious or critical on the page as it is now."""
    blocking = [v for v in await axe_violations(page) if v["impact"] in BLOCKING_IMPACTS]
    if blocking:
        raise AssertionError(
            f"{page.url}: {len(blocking)} serious or critical accessibility violations (axe-core):\n"
            + describe_violations(blocking)
        )


SCREENSHOTS_ENV = "STUDIO_SCREENSHOTS"


async def screenshot(page: Page, name: str) -> Path | None:
    """With STUDIO_SCREENSHOTS set to a directory, a full-page PNG of the page as `<name>.png` there; else nothing."""
    directory = os.environ.get(SCREENSHOTS_ENV)
    if not directory:
        return None
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=path, full_page=True)
    return path


class Findings:
    """Problems of a page's quality (accessibility, layout) that need not stop a flow: each is kept, and the test
    fails with all of them at the end (see `collected_findings`), so one page's problem hides no other's."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    async def check(self, check: Awaitable[None]) -> None:
        try:
            await check
        except AssertionError as problem:
            self.problems.append(str(problem))

    def report(self) -> str:
        return f"{len(self.problems)} problem(s) found on the way:\n\n" + "\n\n".join(self.problems)


@contextlib.contextmanager
def collected_findings() -> Iterator[Findings]:
    """Fails at the end of the block with every problem `Findings.check` kept; when the block fails on its own, its
    error carries them as a note."""
    findings = Findings()
    try:
        yield findings
    except BaseException as failure:
        if findings.problems:
            failure.add_note(findings.report())
        raise
    if findings.problems:
        raise AssertionError(findings.report())
