"""The admin's freshness page in a real browser (Debian's Chromium, headless, driven by
Selenium): staff log in, the page shows its sections and chart, and its screenshot is kept
(PREWARM_ARTIFACTS, default artifacts/ at the repository root)."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.processes import stop_or_fail, wait_web
from tests.waiting import ROOT
from tools import procs

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("PREWARM_ARTIFACTS", ROOT / "artifacts"))


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def web(service_env, tmp_path):
    static = tmp_path / "static"
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT,
                   env={**service_env, "PREWARM_STATIC_ROOT": str(static)}, check=True, timeout=120)
    port = procs.free_port()
    env = {**service_env, "HOST": "127.0.0.1", "PORT": str(port), "PREWARM_STATIC_ROOT": str(static)}
    proc = procs.spawn("web", [sys.executable, "-m", "config.web"], tmp_path / "web.log", cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_web(proc, url)
        yield url
    finally:
        stop_or_fail([proc])


def test_staff_see_the_freshness_page_in_a_browser(catalogue, redis_client, purge_queues, browser, web):
    from django.contrib.auth.models import User
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from core.models import Profile
    from ops import jobs
    from ops.scope import Scope
    from workers import tasks

    ids = [Profile.objects.create(region=catalogue["eu"], isp=catalogue["fibra"]).pk for _ in range(5)]
    for lag in (0.0, 0.4, 4.0):  # changes that landed just, 0.4 s and 4 s after their commit (three buckets)
        tasks.rebuild.apply(args=("profile", ids, time.time() - lag))
    jobs.submit(Scope(regions=("EU-WEST",)))
    User.objects.create_superuser("ops", "ops@example.invalid", "a long dev password")

    browser.get(web + "/admin/login/?next=/admin/freshness/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys("a long dev password")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    # The click returns before the next page loads: on a busy machine (CI) the login page
    # was still there when the heading was looked for.
    WebDriverWait(browser, 30).until(lambda b: urlsplit(b.current_url).path == "/admin/freshness/")
    heading = WebDriverWait(browser, 30).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#content h1")))
    assert heading.text == "Cache freshness"
    for section in ("hits", "lag", "drift", "waiting", "jobs"):
        assert browser.find_element(By.ID, section).is_displayed()
    bars = browser.find_elements(By.CSS_SELECTOR, "#lag svg rect")
    assert len(bars) == 16 and sum(float(b.get_attribute("height")) > 0 for b in bars) == 3
    assert "running" in browser.find_element(By.ID, "jobs").text or "queued" in browser.find_element(By.ID, "jobs").text
    # Styled: the admin's own CSS was served (collectstatic), not a bare page.
    assert browser.execute_script("return getComputedStyle(document.body).fontFamily") != "Times New Roman"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "admin-freshness.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
