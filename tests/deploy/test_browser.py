"""The browser check: the deployed dashboards, opened in a real (headless) Chromium as a user would,
render every chart with data, and the hub's links lead to the detail dashboards.

Driven with Playwright's Python API against Debian's /usr/bin/chromium (`make test` installs it when
missing); Playwright's own browser downloads are never used. One PNG per dashboard goes to
screenshots/ at the repo root (PFILL_SCREENSHOTS overrides).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pfill.dashboards.specs import DashboardSpec, load_specs
from pfill.deploy.identity import deployed_slug

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.superset, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PFILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# An environment and tenant of this test's own: the other deploy tests own `it`/`lite`, and a slug
# belongs to one environment (the engine output is the same SQLite database `lite` uses).
ENV = TENANT = "browser"
OTHER = "browserb"
VIEWER_PASSWORD = "Browser-Viewer-Pw-1"
CHART_TIMEOUT = 60.0  # seconds for every chart of one dashboard to finish (each takes ~5 s here)
HUB = "hub"
SPECS: dict[str, DashboardSpec] = {  # the hub first, then the detail dashboards
    loaded.spec.slug: loaded.spec for loaded in sorted(load_specs(), key=lambda s: s.spec.slug != HUB)
}

# Each chart of the dashboard (markdown blocks share the holder but have no slice header), as
# {title, state, detail}; state is loading, error, empty, drawn, or pending (not drawn yet).
# Charts still pending are scrolled into view, in case Superset renders lazily.
CHART_STATES = """() => {
  const holders = [...document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')]
    .filter((h) => h.querySelector('[data-test="slice-header"]'));
  return holders.map((h) => {
    const title = (h.querySelector('[data-test="editable-title"]')?.innerText || '').trim();
    const box = h.querySelector('[data-test="chart-container"]');
    const text = (box?.innerText || '').trim();
    const alert = h.querySelector('[role="alert"], [data-test="alert"], .ant-alert-error, .alert-danger');
    let state = 'pending', detail = '';
    if (alert || /Unexpected error|Data error/i.test(text)) {
      state = 'error';
      detail = (alert?.innerText || text).trim().slice(0, 300);
    } else if (h.querySelector('[data-test="loading-indicator"]')) {
      state = 'loading';
    } else if (box && (box.querySelector('.no-results-title, [data-test="empty-state"], .ant-empty')
                       || /^No results/im.test(text))) {
      state = 'empty';
      detail = text.slice(0, 300);
    } else if (box && (box.querySelector('canvas, svg')
                       || [...box.querySelectorAll('tbody td, .header-line')].some((e) => e.innerText.trim()))) {
      state = 'drawn';
    }
    if (state === 'pending' || state === 'loading') h.scrollIntoView({block: 'center'});
    return {title, state, detail};
  });
}"""


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"the browser check cannot run: {why} (CI is set, so this is a failure)", pytrace=False)
    pytest.skip(f"SKIPPED, NOT PASSED: the browser check cannot run: {why}")


def screenshots_dir() -> Path:
    folder = Path(os.environ.get("PFILL_SCREENSHOTS") or REPO / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def deployed(deploy_target: Any) -> str:
    """This test's tenants deployed to the session's Superset, from an environments file of its own
    (so the shared one, and the tenants the other tests deploy, are left as they are): `browser`,
    and `browserb`, whose dashboards `browser`'s viewer must not open."""
    own = dataclasses.replace(deploy_target, config=deploy_target.work / "browser.yaml", tenants={})
    own.write_env(ENV, [TENANT, OTHER])
    result = own.pfill("apply", "--env", ENV, "--yes")
    assert result.exit_code == 0, result.output
    return own.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM} (`make browser-deps` installs Debian's)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _login(browser: Browser, base: str, user: str, password: str) -> tuple[Any, Page]:
    """A page logged in through Superset's login form. Requests that leave the test Superset (its
    telemetry pixel) are refused, so nothing waits on the network outside."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.set_default_timeout(30_000)
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                  else route.abort())
    page = context.new_page()
    page.goto(f"{base}/login/")
    page.fill('[data-test="username-input"]', user)
    page.fill('[data-test="password-input"]', password)
    page.click('[data-test="login-button"]')
    page.wait_for_url(lambda url: "/login" not in url)
    return context, page


@pytest.fixture(scope="module")
def page(browser: Browser, deployed: str, superset: Any) -> Iterator[Page]:
    context, page = _login(browser, deployed, "admin", superset.admin_password())
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="module")
def viewer_page(browser: Browser, deployed: str, superset_client: Any) -> Iterator[Page]:
    """Logged in as a viewer of tenant `browser` only (Gamma and the tenant's viewer role)."""
    from pfill.deploy.access import ensure_viewer, role_name

    ensure_viewer(superset_client, "viewer-browser", role_name(ENV, TENANT), VIEWER_PASSWORD)
    context, page = _login(browser, deployed, "viewer-browser", VIEWER_PASSWORD)
    try:
        yield page
    finally:
        context.close()


def dashboard_url(base: str, slug: str) -> str:
    return f"{base}/superset/dashboard/{deployed_slug(TENANT, slug)}/"


def wait_for_charts(page: Page, spec: DashboardSpec) -> list[dict[str, str]]:
    """Every chart of the dashboard once none is loading or still to be drawn (or at the timeout)."""
    deadline = time.monotonic() + CHART_TIMEOUT
    while True:
        charts: list[dict[str, str]] = page.evaluate(CHART_STATES)
        settled = len(charts) == len(spec.charts) and all(c["state"] not in ("loading", "pending") for c in charts)
        if settled or time.monotonic() > deadline:
            return charts
        page.wait_for_timeout(250)


def check_dashboard(page: Page, spec: DashboardSpec, shot: str | None = None) -> None:
    """The open dashboard is this spec's, and every one of its charts is drawn with data."""
    expected_title = f"{spec.title} ({TENANT})"
    page.wait_for_function("t => document.title === t", arg=expected_title)
    charts = wait_for_charts(page, spec)
    page.evaluate("window.scrollTo(0, 0)")  # back from charts scrolled into view, for the screenshot
    page.wait_for_function("window.scrollY === 0")
    page.screenshot(path=screenshots_dir() / f"{shot or spec.slug}.png", full_page=True)
    assert sorted(c["title"] for c in charts) == sorted(c.title for c in spec.charts), charts
    bad = [c for c in charts if c["state"] != "drawn"]
    assert not bad, f"{spec.slug}: charts not drawn with data after {CHART_TIMEOUT:.0f}s: {bad}"


@pytest.mark.parametrize("slug", list(SPECS))
def test_dashboard_renders_every_chart_with_data(page: Page, deployed: str, slug: str) -> None:
    page.goto(dashboard_url(deployed, slug))
    check_dashboard(page, SPECS[slug])


def test_hub_links_open_the_detail_dashboards(page: Page, deployed: str) -> None:
    page.goto(dashboard_url(deployed, HUB))
    links = page.locator('[data-test="dashboard-component-chart-holder"] a[href^="/superset/dashboard/"]')
    links.first.wait_for()
    targets = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert targets == {f"/superset/dashboard/{deployed_slug(TENANT, s)}/" for s in SPECS if s != HUB}

    detail = SPECS["trade-recap"]
    page.get_by_role("link", name="Trade recap", exact=True).click()
    page.wait_for_url(dashboard_url(deployed, detail.slug))
    check_dashboard(page, detail)


def test_a_viewer_sees_their_hub_with_data_and_not_another_tenants(viewer_page: Page, deployed: str) -> None:
    """Tenant isolation as a person meets it: `browser`'s viewer opens its hub (every chart drawn),
    and the other tenant's hub does not open for them."""
    viewer_page.goto(dashboard_url(deployed, HUB))
    check_dashboard(viewer_page, SPECS[HUB], shot=f"viewer-{HUB}")
    other = SPECS[HUB]
    viewer_page.goto(f"{deployed}/superset/dashboard/{deployed_slug(OTHER, HUB)}/")
    viewer_page.wait_for_timeout(3000)
    viewer_page.screenshot(path=screenshots_dir() / f"viewer-refused-{OTHER}-{HUB}.png", full_page=True)
    assert viewer_page.title() != f"{other.title} ({OTHER})"
    assert viewer_page.locator('[data-test="dashboard-component-chart-holder"]').count() == 0
