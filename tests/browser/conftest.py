"""The browser suite: the real Label Studio UI in Debian's headless Chromium, driven by Selenium.

One Label Studio server (tests/review_server.py) and one browser serve the whole session. The
browser logs in through the login form, as an annotator does. Without ``chromium`` and
``chromedriver`` on PATH the suite skips with the reason, except under ``CI=true`` where it fails
(``make install`` installs them when it runs as root).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (review_server) when run alone
from review_server import labelstudio_server  # noqa: E402,F401 (the session's server fixture)

# Without the background-networking flags Chromium phones home at start; on a closed network each
# refused connection costs seconds and clutters the driver's log.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
)


def chromium_paths() -> tuple[str, str] | str:
    """(chromium, chromedriver), or the reason they cannot be used."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    return f"{' and '.join(missing)} not on PATH (Debian: apt-get install chromium chromium-driver; `make install` does it as root)"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.labelstudio)


@pytest.fixture(scope="session")
def browser(request):
    """A headless Chromium with a fresh profile, logged in to the session's Label Studio.

    Chromium is looked for before the server starts: a machine without it skips at once."""
    found = chromium_paths()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(found)
        pytest.skip(found)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        reason = f"selenium is not installed ({error}); it is in the dev extras: pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    binary, driver_path = found
    labelstudio_server = request.getfixturevalue("labelstudio_server")
    profile = Path(tempfile.mkdtemp(prefix="skyeye-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(120)
    try:
        login(driver, labelstudio_server)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def login(driver, server) -> None:
    """Through the login form, as a person does."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{server.url}/user/login/")
    WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.NAME, "email")))
    driver.find_element(By.NAME, "email").send_keys(server.email)
    driver.find_element(By.NAME, "password").send_keys(server.password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
    WebDriverWait(driver, 60).until(lambda d: "/user/login" not in d.current_url)
    # region labels drawn on the image (the editor's "Show region labels" setting, kept in localStorage)
    driver.execute_script(
        "const k='labelStudio:settings'; const s=JSON.parse(localStorage.getItem(k)||'{}');"
        "s.showLabels=true; localStorage.setItem(k, JSON.stringify(s));"
    )
