"""The viewer in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver (scripts/test.sh installs both; no tool downloads a browser). It
opens the page of a real eval run from disk, filters the table, opens an episode and checks
its timeline and thumbnails; the screenshot stays in the test's tmp folder."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.view.test_build import page_data

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


INSTALL_WAIT_S = 600  # scripts/test.sh may still be installing them in the background


def _wait_for_the_browser() -> None:
    """Return once chromium and chromedriver are there; fail naming what is missing."""
    log = os.environ.get("VAGEN_BROWSER_INSTALL_LOG")
    deadline = time.monotonic() + (INSTALL_WAIT_S if log else 0)
    while True:
        missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
        finished = log and Path(log).exists() and "exit " in Path(log).read_text()
        if not missing or finished or time.monotonic() > deadline:
            break
        time.sleep(2)
    if missing:
        where = f" (the install's log: {log})" if log else ""
        pytest.fail(f"{', '.join(missing)} missing{where}: install Debian's chromium and "
                    "chromium-driver (bash scripts/test.sh does)")


@pytest.fixture
def browser():
    _wait_for_the_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_filters_opens_an_episode_and_shows_its_timeline(browser, eval_run, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = tmp_path / "view"
    shutil.copytree(eval_run / "view", page)  # opened from any folder, no server
    episodes = page_data(page / "index.html")["episodes"]
    browser.get((page / "index.html").as_uri())
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr.episode")) == len(episodes)

    status = episodes[0]["status"]
    Select(browser.find_element(By.ID, "filter-status")).select_by_value(status)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.episode")
    assert len(rows) == sum(e["status"] == status for e in episodes)
    assert browser.find_element(By.ID, "count").text.startswith(f"{len(rows)} of ")

    rows[0].click()
    shown = next(e for e in episodes if e["id"] == rows[0].get_attribute("data-id"))
    panel = browser.find_element(By.ID, "panel")
    assert panel.get_attribute("data-id") == shown["id"]
    marks = panel.find_elements(By.CSS_SELECTOR, ".timeline .mark")
    assert len(marks) == sum(len(view) for view in shown["views"]) > 0
    images = panel.find_elements(By.CSS_SELECTOR, ".thumbs img")
    assert len(images) == len(marks)
    loaded = browser.execute_script(
        "return [...arguments[0]].every(i => i.complete && i.naturalWidth > 0)", images)
    assert loaded, "a thumbnail did not load"
    browser.save_screenshot(str(tmp_path / "viewer.png"))
    assert (tmp_path / "viewer.png").stat().st_size > 10_000
