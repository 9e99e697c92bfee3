"""Headless Chromium from Debian's packages, driven by Selenium through Debian's chromedriver.

Selenium's own driver download (Selenium Manager) cannot work offline, so the driver is pointed
at `/usr/bin/chromedriver` explicitly; `.ci/run` installs `chromium` and `chromium-driver` when
they are missing. Without them the browser tests skip, or fail under CI=true.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    """Where the browser test leaves its screenshots (`scripts/screenshots` copies them)."""
    folder = Path(os.environ.get("RETURNS_SYNC_UI_ARTIFACTS") or ROOT / ".airflow" / "ui-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def require_chromium() -> None:
    if shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER):
        return
    message = "Debian chromium + chromium-driver are not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium(width: int = 1440, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium session, closed (with its driver) when the block ends."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver: Any, condition: Callable[[Any], Any], timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)
