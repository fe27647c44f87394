"""End to end, in a real headless browser: `otdata explore` on tiny generated datasets, driven
through Debian's chromium as a person would use it. Screenshots go to the test's own folder
(pytest's tmp_path, printed at the end of each test)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.explore.browser import Page, Server, start_chromium
from tests.explore.conftest import explore_config, reference_otdd

PER_CLASS, DEGREES, STEPS = 8, 90, 4


@pytest.fixture(scope="module")
def server(explore_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("explore_server")
    app = Server([f"paths.data_dir={explore_root}", f"paths.cache_dir={work / 'cache'}", f"hydra.run.dir={work / 'run'}",
                  "task.per_class=6", f"task.flow_steps={STEPS}", "task.flow_per_class=3"], work / "server.log")
    yield app
    app.stop()


@pytest.fixture
def page(server, tmp_path):
    driver = start_chromium()
    try:
        yield Page(driver, server.url, tmp_path / "screenshots")
    finally:
        driver.quit()
        print(f"screenshots: {tmp_path / 'screenshots'}")


def test_choose_compute_check_the_number_and_play_the_flow(page, server, explore_root, tmp_path):
    page.choose("source-dataset", "USPS")
    page.choose("target-dataset", "MNIST")
    page.choose("source-transform", "rotate")
    page.type_into("#source-degrees input[type=number]", DEGREES)
    page.type_into("#per-class input", PER_CLASS)
    kind, first = page.compute()
    assert kind == "value", page.text("#otdd")
    value = float(page.find("#otdd-value").get_attribute("data-value"))
    assert "converged: yes" in page.text("#otdd") and "rotated 90°" in page.text("#otdd")
    page.wait(lambda: page.find("#heatmap img").get_attribute("src"), what="the heat map")
    page.wait(lambda: page.find("#embedding img").get_attribute("src"), what="the embedding")
    assert "sends most mass to" in page.text("#matching")
    assert value == pytest.approx(reference_otdd(explore_root, explore_config(explore_root, tmp_path),
                                                 PER_CLASS, degrees=DEGREES), rel=1e-5)
    page.screenshot("distance")

    kind, cached = page.compute()  # the same choice again: from the cache
    assert kind == "value" and "shown from the cache" in page.text("#otdd")
    assert cached < 1.0, f"a cached choice took {cached:.2f} s in the browser"

    page.find("#flow").click()
    page.wait(lambda: page.text("#flow-summary"), what="the flow's summary")
    assert f"in {STEPS} steps" in page.text("#flow-summary")
    page.wait(lambda: f"step {STEPS} of {STEPS}" in page.text("#flow-caption"), what="the last frame")
    page.screenshot("flow-last-frame")
    from selenium.webdriver.common.keys import Keys

    slider = page.find("#flow-slider input[type=range]")
    slider.send_keys(Keys.HOME)
    page.wait(lambda: f"step 0 of {STEPS}" in page.text("#flow-caption"), what="frame 0")
    slider.send_keys(Keys.ARROW_RIGHT)
    page.wait(lambda: f"step 1 of {STEPS}" in page.text("#flow-caption"), what="frame 1")
    page.screenshot("flow-frame-1")

    page.type_into("#flow-steps input[type=number]", 100)  # a long flow: its progress, then Stop
    page.find("#flow").click()
    page.wait(lambda: "flow step" in page.d.execute_script(
        "return Array.from(document.querySelectorAll('.progress-level')).map(e => e.innerText).join(' ')"),
        what="the flow's progress bar")
    page.screenshot("flow-progress")
    page.find("#stop").click()
    page.wait(lambda: "Stopped: the flow was cancelled" in page.text("#flow-status"), what="the stopped flow")
    assert "stopping the running computation" in page.text("#stop-status")
    print(f"first compute {first:.2f} s, cached {cached:.2f} s (browser clock)")
    assert server.alive


@pytest.mark.parametrize("case", ["outside the root", "missing dataset", "bad size"])
def test_a_bad_choice_shows_its_error_on_the_page_and_the_server_keeps_running(case, page, server):
    if case == "outside the root":
        page.type_into("#source-path textarea, #source-path input", "../../../etc")
        expected = "outside the data root"
    elif case == "missing dataset":
        page.choose("source-dataset", "SVHN (files missing)")
        expected = "SVHN: the train split is missing"
    else:
        page.type_into("#per-class input", 1)
        expected = "samples per class must be between 2"
    kind, _ = page.compute()
    assert kind == "error" and expected in page.text("#page-error"), page.text("#otdd")
    page.screenshot(case.replace(" ", "-"))
    assert server.alive
    page.d.refresh()  # a fresh page (the default choice) still computes
    page.wait(lambda: page.d.find_elements("id", "compute"), what="the reloaded page")
    page.type_into("#per-class input", 4)
    assert page.compute()[0] == "value"


def test_the_server_listens_on_loopback_and_serves_no_data_file(server, explore_root):
    assert server.url.startswith("http://127.0.0.1:")
    data_file = explore_root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    for route in (f"gradio_api/file={data_file}", f"file={data_file}", "gradio_api/file=/etc/passwd"):
        try:
            with urllib.request.urlopen(server.url + route, timeout=10) as reply:
                body = reply.read()
            assert data_file.read_bytes()[:64] not in body and b"root:" not in body, route
        except urllib.error.HTTPError as error:
            assert error.code in (403, 404), (route, error.code)
    config = json.loads(urllib.request.urlopen(server.url + "config", timeout=10).read())
    assert "components" in config
