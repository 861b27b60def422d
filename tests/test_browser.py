"""The pages in a real browser: Debian's Chromium driven headless by Playwright.

Needs /usr/bin/chromium (`apt-get install chromium`); skipped with that message without it.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from .conftest import azure_with, face_frames, wait_for_job, write_video

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium: apt-get install chromium"
)
# As root and on a machine without a network: no sandbox, no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def served(make_app, live_server, mock_prediction_client):
    """The app with its CSRF checks on (the real form posts its token), sampling one frame in five
    so that the progress bar has several steps to show."""
    app = make_app(WTF_CSRF_ENABLED=True, FRAME_INTERVAL=5)
    app.extensions["deepfake"].classifier = azure_with(mock_prediction_client)
    app.extensions["deepfake"].queue.start()  # as wsgi.py does
    return app, live_server(app)


def test_upload_watch_progress_and_read_the_verdict(served, browser, tmp_path):
    app, base = served
    video = write_video(tmp_path / "interview.mp4", face_frames(200))
    page = browser.new_page(locale="en-US")
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(base)
    page.set_input_files("#video", str(video))
    page.click("form.upload button[type=submit]")
    page.wait_for_url("**/results/*")
    progress_seen = []  # (bar value, stage text) while the job page shows
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and page.locator("#verdict").count() == 0:
        with contextlib.suppress(PlaywrightError):  # the page may reload between the reads
            progress_seen.append(
                (float(page.get_attribute("#progress", "value", timeout=100)), page.inner_text("#stage"))
            )
        time.sleep(0.05)
    page.wait_for_selector("#verdict", timeout=5_000)

    assert progress_seen, "the job page with its progress bar was never shown"
    assert all(0.0 <= value <= 1.0 for value, _ in progress_seen)
    assert len({value for value, _ in progress_seen}) >= 2, f"the bar never moved: {progress_seen}"
    assert {stage for _, stage in progress_seen} <= {
        "Waiting for a free worker",
        "Starting the analysis",
        "Reading the video",
        "Finding faces",
        "Judging the face crops",
        "Saving the result",
    }
    assert page.locator("#verdict").inner_text() == "DeepFake"
    assert page.locator("#deepfake-probability").inner_text() == "80.0%"
    assert page.locator("#timeline").is_visible()
    assert page.locator("#timeline circle").count() == 40
    gallery = page.locator("#gallery img")
    assert gallery.count() == 40
    gallery.first.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelector('#gallery img').naturalWidth > 0")
    screenshot = page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
    assert screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    assert problems == [], problems  # no script errors, no Content-Security-Policy refusals

    page.wait_for_load_state("networkidle")  # leave no crop half-sent (the test server then warns)
    page.click("text=My analyses")
    expect(page.locator("#mine li")).to_have_count(1, timeout=30_000)  # each read below waits for its page
    page.click("#mine a")
    page.wait_for_load_state("networkidle")  # the results page's crops again, all sent before leaving
    page.click("#delete-link")
    expect(page.locator("h1")).to_have_text("Delete this analysis?", timeout=30_000)  # asks first
    page.click("#confirm-delete")
    # The redirect may still be loading when the click returns: page.content() then read an empty
    # document (Playwright's maintainers: content read mid-navigation is unpredictable).
    expect(page.locator("body")).to_contain_text("were deleted", timeout=30_000)
    expect(page.locator("#mine")).to_have_count(0)


def analysed(app, base: str, tmp_path, browser, **page_options):
    """A page showing the results of a 200-frame interview clip (40 crops at one frame in five).
    The clip is put in place as an upload would be (the test client would leave a spooled body open)."""
    services = app.extensions["deepfake"]
    video = write_video(tmp_path / "interview.mp4", face_frames(200))
    folder = services.folders.create()
    (folder / "upload.mp4").write_bytes(video.read_bytes())
    services.store.create(folder.name, file_name="interview.mp4", media="video")
    services.queue.submit(folder.name)
    wait_for_job(app, folder.name, timeout=120)
    location = f"/results/{folder.name}"
    page = browser.new_page(**page_options)
    page.goto(base + location)
    page.wait_for_load_state("networkidle")  # every crop fetched before the test goes on
    return page, location


def test_the_results_page_fits_a_phone(served, browser, tmp_path):
    app, base = served
    page, _ = analysed(app, base, tmp_path, browser, locale="ko-KR", viewport={"width": 390, "height": 844})
    assert page.locator("#verdict").is_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px"
    label_height = page.locator("#timeline text.axis").first.bounding_box()["height"]
    assert label_height >= 9, f"timeline labels are {label_height:.1f}px tall"
    table = page.locator("table.stats").bounding_box()
    assert table["x"] >= 0 and table["x"] + table["width"] <= 390


def test_the_report_opens_offline_with_every_crop(served, browser, tmp_path):
    app, base = served
    page, location = analysed(app, base, tmp_path, browser, locale="en-US", accept_downloads=True)
    with page.expect_download() as download:
        page.click("#report-link")
    report = tmp_path / "report.html"
    download.value.save_as(report)
    app.extensions["deepfake"].folders.delete(location.rsplit("/", 1)[-1])  # swept: the report must not care

    offline = browser.new_page()
    requests = []
    offline.on("request", lambda request: requests.append(request.url))
    offline.goto(report.as_uri())
    offline.wait_for_function("[...document.images].every(image => image.complete && image.naturalWidth > 0)")
    assert offline.locator("#gallery img").count() == 40
    assert offline.locator("#verdict").inner_text() == "DeepFake"
    assert requests == [report.as_uri()], requests  # the file itself and nothing else


def test_the_pages_switch_to_korean(served, browser):
    _, base = served
    page = browser.new_page(locale="ko-KR")
    page.goto(base)
    assert page.locator("h1").inner_text() == "이 동영상은 딥페이크일까요?"
    page.click("text=English")
    expect(page.locator("h1")).to_have_text("Is this video a deepfake?", timeout=30_000)  # once the page reloads


def test_a_file_that_is_not_a_video_gets_a_clear_page(served, browser, tmp_path):
    _, base = served
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video at all")
    page = browser.new_page(locale="en-US")
    page.goto(base)
    page.set_input_files("#video", str(fake))
    with page.expect_response(lambda response: response.url.endswith("/upload")) as response:
        page.click("form.upload button[type=submit]")
    assert response.value.status == 400
    assert "not a video or photo that can be read" in page.locator("[role=alert]").inner_text()


def test_chromium_is_the_one_the_readme_names():
    assert shutil.which("chromium") == str(CHROMIUM)
