"""The web UI in a real headless Chromium (Debian's package, driven by Selenium): upload, "Run all", watch the video.

Saves a screenshot of the finished page to `$RERENDER_ARTIFACTS` (default `test-artifacts/`) as a test artifact.
Skips, saying why, only where Chromium or its driver is not installed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
selenium = pytest.importorskip("selenium")

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next(
    (
        path
        for path in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
        if path and Path(path).is_file()
    ),
    None,
)
DRIVER = next(
    (path for path in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if path and Path(path).is_file()), None
)
pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="Chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def page_url():
    from rerender.config import apply_overrides, load_config
    from rerender.ui import launch

    # The bundled clip in full (100 frames) at a small size, so "Run all" takes seconds on a CPU.
    defaults = apply_overrides(
        load_config(REPO / "configs" / "tiny.yaml"), {"video.resolution": 128, "keyframe_interval": 25}
    )
    app, url = launch(port=None, defaults=defaults, clip_model="")
    yield url
    app.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(argument)
    options.page_load_strategy = "eager"  # never wait for every asset (nothing may wait on the network)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_run_all_in_a_real_browser(page_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as expected
    from selenium.webdriver.support.ui import WebDriverWait

    from rerender.ui import DEMO_VIDEO
    from rerender.video import probe_video

    wait = WebDriverWait(browser, 90)
    browser.get(page_url)
    upload = wait.until(expected.presence_of_element_located((By.CSS_SELECTOR, "#rr-input input[type=file]")))
    upload.send_keys(str(DEMO_VIDEO))
    wait.until(lambda driver: "100 (4.00 s)" in driver.find_element(By.ID, "rr-summary").text)

    # the modes: each shows its own run button (the still → rerender.animate, text only → rerender.generate)
    def shown(driver, xpath):  # a hidden row may leave the DOM: look it up afresh each time
        return any(element.is_displayed() for element in driver.find_elements(By.XPATH, xpath))

    run_all = "//button[normalize-space()='Run all']"
    for mode, button in (("Still image", "rr-animate"), ("Text only", "rr-generate")):
        browser.find_element(By.XPATH, f"//button[@role='tab' and normalize-space()='{mode}']").click()
        wait.until(lambda driver: shown(driver, f"//*[@id='{button}']") and not shown(driver, run_all))  # noqa: B023
        if mode == "Still image":  # the amount it shows is the one it sends, and a valid one: zoom-in's 0.25
            amount = browser.find_element(By.CSS_SELECTOR, "#rr-still-amount input")
            assert float(amount.get_attribute("value")) == 0.25
    browser.find_element(By.XPATH, "//button[@role='tab' and normalize-space()='Video']").click()
    wait.until(lambda driver: shown(driver, run_all) and not shown(driver, "//*[@id='rr-generate']"))
    browser.find_element(By.XPATH, "//button[contains(normalize-space(), 'Reference image (IP-Adapter)')]").click()
    wait.until(lambda driver: shown(driver, "//*[@id='rr-style']"))  # the reference image's upload, with its scale
    assert shown(browser, "//*[contains(normalize-space(text()), 'Style image scale')]")
    prompt = browser.find_element(By.CSS_SELECTOR, "textarea[placeholder^='a cartoon']")
    browser.find_element(By.XPATH, "//label[.//input[@type='radio' and @value='classic']]").click()

    # An error stays in the status area (not only in a popup that goes away) until the next action. The popup
    # closes after a few seconds; 10 s stands for "a minute later", to keep the test short.
    prompt.send_keys(Keys.CONTROL, "a")
    prompt.send_keys(Keys.DELETE)  # as a user empties it (clear() fires no input event)
    browser.find_element(By.XPATH, "//button[normalize-space()='First keyframe']").click()

    def status_text(driver) -> str:  # the words of the status area (the option's name is set as code)
        return " ".join(driver.find_element(By.ID, "rr-status").text.split())

    wait.until(lambda driver: "prompt is empty" in status_text(driver))
    time.sleep(10)
    status = status_text(browser)
    assert status.startswith("Error:") and "prompt is empty" in status, status
    assert not browser.execute_script(  # no "Error" badges left on the outputs
        "return [...document.querySelectorAll('.error')].filter(e => e.offsetParent !== null).map(e => e.textContent)"
    )

    prompt.send_keys("a watercolour painting, soft pastel colours")
    browser.find_element(By.XPATH, "//button[normalize-space()='Run all']").click()
    trackers: set = set()  # where a progress display appears while the run goes on

    def finished(driver):
        trackers.update(
            driver.execute_script(
                "return [...document.querySelectorAll('.progress-text, .eta-bar')].filter(e => e.offsetParent !== null)"
                ".map(e => e.closest('[id]') ? e.closest('[id]').id : '?')"
            )
        )
        return driver.execute_script(
            "const v = document.querySelector('#rr-result video');"
            "return v && v.readyState >= 1 && isFinite(v.duration) ? v.duration : null;"
        )

    duration = WebDriverWait(browser, 240, poll_frequency=0.2).until(finished)
    assert trackers == {"rr-progress"}, trackers  # one progress display: never over the keyframes or the video
    source = probe_video(DEMO_VIDEO).duration
    assert abs(duration - source) < 0.15, (duration, source)
    WebDriverWait(browser, 120).until(  # the figures come after the video, with their own progress
        lambda driver: "Computing the figures" not in driver.find_element(By.ID, "rr-status").text
    )
    assert "Done: 100 frames" in browser.find_element(By.ID, "rr-status").text

    # Nothing on the page came from elsewhere (fonts, scripts, analytics): it works offline.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    local = page_url.rstrip("/")
    assert loaded and [url for url in loaded if not url.startswith((local, "data:", "blob:"))] == []

    artifacts = Path(os.environ.get("RERENDER_ARTIFACTS", REPO / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)  # let the video's first frame paint
    assert browser.save_screenshot(str(artifacts / "ui-run-all.png"))
