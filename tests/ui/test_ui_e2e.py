"""The Returns views in a real browser on the real stack: log in to Airflow, find returns, read
a flagged return's story, the queues, the trend and a run's tab, all checked against the
sandbox's truth; screenshots land in the artifacts folder (`scripts/screenshots` copies them to
docs/img/). Logged out, the views answer 401; hostile vendor values render as text.

Airflow's SimpleAuthManager with a real password login (no "all admins"), headless Debian
Chromium through Selenium. Takes about three minutes, most of it the demo day's DAG runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.airflow_stack import ADMIN
from tests.ui.browser import artifacts_dir, chromium, require_chromium, wait_until
from tests.ui.day import (
    HOSTILE_ORDER,
    HOSTILE_REASON,
    HOSTILE_SKU,
    RECEIPTS,
    ReturnsDay,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VIEWS = "/returns-sync-ui"


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReturnsDay]:
    require_chromium()
    running = ReturnsDay(tmp_path_factory.mktemp("ui"))
    try:
        running.start()
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(day: ReturnsDay) -> Iterator[Any]:
    """One logged-in Chromium for the whole tour (Airflow's login form, admin's password)."""
    assert day.stack is not None
    with chromium() as driver:
        log_in(driver, day.stack.url, ADMIN, day.stack.password)
        yield driver


def log_in(driver: Any, url: str, username: str, password: str) -> None:

    driver.get(f"{url}/")
    field = wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input[name=username]"))
    field.send_keys(username)
    secret = driver.find_element(By.CSS_SELECTOR, "input[name=password], input[type=password]")
    secret.send_keys(password, Keys.ENTER)
    wait_until(driver, lambda d: any(c["name"] == "_token" for c in d.get_cookies()))


def shot(driver: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    time.sleep(0.3)  # let fonts and the chart settle
    driver.save_screenshot(str(path))
    return path


def plugin_frame(driver: Any, page_url: str, title: str) -> Any:
    """Open an Airflow UI page that shows one of our views and switch into its frame."""
    driver.switch_to.default_content()
    driver.get(page_url)
    frame = wait_until(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, f"iframe[title='{title}']")
    )
    driver.switch_to.frame(frame)
    wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, "header.bar"))
    return frame


def text(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def texts(driver: Any, css: str) -> list[str]:
    return [str(e.text) for e in driver.find_elements(By.CSS_SELECTOR, css)]


def search(driver: Any, query: str) -> None:

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query, Keys.ENTER)
    wait_until(
        driver,
        lambda d: (
            d.find_elements(By.ID, "return-title")
            or d.find_elements(By.ID, "no-hits")
            or d.find_elements(By.ID, "hits")
        ),
    )


# --------------------------------------------------------------------------- logged out


def test_logged_out_the_views_answer_401_with_no_data(day: ReturnsDay) -> None:
    assert day.stack is not None
    base = day.stack.url + VIEWS
    paths = [
        "/",
        f"/?q={day.hostile_id}",
        f"/returns/default/{day.hostile_id}",
        "/queues",
        "/trend",
        f"/runs/{RECEIPTS}/{quote(day.runs.receipts, safe='')}",
    ]
    for path in paths:
        response = requests.get(base + path, timeout=30, allow_redirects=False)
        assert response.status_code == 401, (path, response.status_code)
        assert day.hostile_id not in response.text and "HX-1" not in response.text


# --------------------------------------------------------------------------- the tour


def test_the_returns_entry_is_in_airflows_navigation(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    browser.switch_to.default_content()
    browser.get(day.stack.url + "/")
    link = wait_until(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, "a[href$='/plugin/returns']")
    )
    assert "Returns" in (
        link.text or link.get_attribute("title") or link.get_attribute("aria-label") or "Returns"
    )


def test_search_finds_a_flagged_return_and_shows_its_timeline(
    browser: Any, day: ReturnsDay
) -> None:
    assert day.stack is not None
    flagged = sorted(
        (t for t in day.flagged() if t.return_id != day.hostile_id), key=lambda t: t.return_id
    )
    assert flagged, "the seeded day has no flagged return"
    target = flagged[0]
    plugin_frame(browser, day.stack.url + "/plugin/returns", "Returns")
    browser.find_element(By.ID, "q").send_keys(target.return_id)
    shot(browser, "01-search")
    search(browser, target.return_id)
    assert text(browser, "#return-title") == f"Loop return {target.return_id}"
    assert text(browser, "#whiplash-id") == str(target.consumer_return_id)
    assert "flag" in text(browser, "#verdict").lower()
    # the pipeline may add codes (e.g. NOTHING_RECEIVED); the truth's must all be there
    assert set(target.expected_reasons) <= set(texts(browser, "#verdict .reason"))
    assert text(browser, "#note")
    # each step links to its Airflow DAG run
    runs = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a.run")}
    assert any(quote(day.runs.receipts, safe="") in (h or "") for h in runs), runs
    shot(browser, "02-timeline-flagged")


def test_hostile_sku_and_reason_render_as_text(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    rma = day.rma_of(day.hostile_id)
    plugin_frame(browser, day.stack.url + "/plugin/returns", "Returns")
    search(browser, str(rma["id"]))  # by the Whiplash consumer return id
    assert text(browser, "#return-title") == f"Loop return {day.hostile_id}"
    # SKUs compare case-insensitively (the note names the normalised SKU)
    assert HOSTILE_SKU.upper() in [s.upper() for s in texts(browser, "#receipt .sku")]
    assert HOSTILE_SKU.upper() in text(browser, "#note").upper()
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    assert HOSTILE_REASON not in browser.page_source  # only ever escaped
    shot(browser, "03-timeline-hostile")
    # the order name finds it too, whatever its case
    browser.find_element(By.LINK_TEXT, "Search").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "q"))
    search(browser, HOSTILE_ORDER.lower())
    assert text(browser, "#return-title") == f"Loop return {day.hostile_id}"


def test_queues_show_counts_and_ages_matching_the_truth(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    plugin_frame(browser, day.stack.url + "/plugin/returns", "Returns")
    browser.find_element(By.LINK_TEXT, "Queues").click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "flagged"))
    assert int(text(browser, "#flagged .count")) == len(day.flagged())
    unmappable = [t for t in day.truth.returns.values() if t.eligible and t.unmappable]
    attention = texts(browser, "#attention tbody tr")
    assert int(text(browser, "#attention .count")) >= len(unmappable)
    for t in unmappable:
        assert any(t.return_id in row for row in attention), t.return_id
    misses = texts(browser, "#misses tbody tr")
    assert int(text(browser, "#misses .count")) == len(day.missed)
    for return_id in day.missed:
        assert any(return_id in row for row in misses), return_id
    shot(browser, "04-queues")


def test_trend_draws_thirty_days(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    plugin_frame(browser, day.stack.url + "/plugin/returns", "Returns")
    browser.find_element(By.LINK_TEXT, "Trend").click()
    canvas = wait_until(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, "#trend-chart[data-ready]")
    )
    assert canvas.get_attribute("data-ready") == "30"
    assert int(text(browser, "#total-created")) == day.rma_count()
    assert int(text(browser, "#total-flagged")) == len(day.flagged())
    assert int(text(browser, "#total-misses")) == len(day.missed)
    shot(browser, "05-trend")


def test_a_runs_tab_summarises_it_with_links_to_timelines(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    run = quote(day.runs.receipts, safe="")
    plugin_frame(
        browser,
        f"{day.stack.url}/dags/{RECEIPTS}/runs/{run}/plugin/returns-sync-run",
        "Returns sync",
    )
    rows = texts(browser, "#run-returns tbody tr")
    decided = [t for t in day.truth.returns.values() if t.expected_verdict in ("flag", "process")]
    for t in decided:
        assert any(t.return_id in row for row in rows), t.return_id
    link = browser.find_element(By.LINK_TEXT, day.hostile_id)
    shot(browser, "06-run-tab")
    link.click()
    wait_until(browser, lambda d: d.find_elements(By.ID, "return-title"))
    assert text(browser, "#return-title") == f"Loop return {day.hostile_id}"


def test_a_run_that_is_not_ours_says_so(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    browser.switch_to.default_content()
    browser.get(f"{day.stack.url}{VIEWS}/runs/some_etl/manual__2026-12-06")
    assert "some_etl is not one of the returns-sync DAGs" in text(browser, "#message")


def test_after_logging_out_the_browser_gets_401(browser: Any, day: ReturnsDay) -> None:
    assert day.stack is not None
    browser.switch_to.default_content()
    browser.delete_all_cookies()
    browser.get(f"{day.stack.url}{VIEWS}/queues")
    assert "Not authenticated" in browser.page_source
    assert day.hostile_id not in browser.page_source
