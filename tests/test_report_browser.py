"""The comparison pages in a real browser: headless Chromium driven by selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium
(``pip install -e ".[test]"``). Skipped, with the reason, only when the browser cannot start.
Set PNP_SCREENSHOTS=DIR to keep the screenshots.
"""
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import smooth_image
from test_report import entry, make_job

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _start_chromium():
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: pip install -e '.[test]'")
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("chromium and chromedriver are not installed: apt-get install -y chromium chromium-driver")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium look for a browser on the network
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    try:
        browser = webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as err:
        pytest.skip(f"chromium cannot start: {str(err.msg or err).splitlines()[0]}")
    browser.set_page_load_timeout(30)
    return browser


@pytest.fixture(scope="module")
def browser():
    b = _start_chromium()
    yield b
    b.quit()


def _restore_like(job: Path, seed: int, amount: float) -> None:
    """Make each restored.png of the job differ from its ground truth (a visible error map)."""
    rng = np.random.default_rng(seed)
    for restored in job.glob("*/restored.png"):
        gt = np.asarray(Image.open(restored.parent / "ground_truth.png"), dtype=np.float64)
        noisy = np.clip(gt + rng.normal(0, amount, gt.shape), 0, 255).round().astype(np.uint8)
        Image.fromarray(noisy).save(restored)


@pytest.fixture(scope="module")
def sweep_page(tmp_path_factory):
    """A tiny sweep with every kind of bad input, reported: 2 priors x 2 operators (2 images),
    a sampler's outputs, a skipped, a failed and a corrupted job, one restored image missing."""
    from pnp.report import write_report

    s = tmp_path_factory.mktemp("browser") / "sweep"
    num = 0
    for prior, base in (("tv", 25.0), ("red", 27.0)):
        for op, shift in (("blur", 0.0), ("inpaint", 3.0)):
            job = make_job(s, num, [f"prior={prior}", f"op={op}", "solver=gd"],
                           [entry(prior, op, base + shift), entry(prior, op, base + shift + 1)])
            _restore_like(job, num, 30.0 - base)
            num += 1
    sampler = make_job(s, num, ["prior=dmsp", "op=blur", "solver=langevin"],
                       [entry("dmsp", "blur", 26.0, solver="langevin", uncertainty_scale=0.02),
                        entry("dmsp", "blur", 26.5, solver="langevin")])
    _restore_like(sampler, 9, 6.0)
    Image.fromarray(smooth_image(24, 3, seed=7)).save(sampler / "im0" / "uncertainty.png")
    (sampler / "im0" / "samples").mkdir()
    for k in range(5):
        Image.fromarray(smooth_image(24, 3, seed=20 + k)).save(sampler / "im0" / "samples" / f"{k:03d}.png")
    (sampler / "im1" / "restored.png").unlink()  # a missing image
    make_job(s, num + 1, ["prior=tikhonov", "op=blur", "solver=fista"], status="skipped",
             reason="incompatible: solver 'fista' needs prox")
    make_job(s, num + 2, ["prior=boom", "op=blur", "solver=gd"], status="failed", reason="RuntimeError: planted failure")
    broken = make_job(s, num + 3, ["prior=broken", "op=blur", "solver=gd"], [entry("broken", "blur", 1.0)])
    (broken / "metrics.json").write_text('{"images": [ {"psnr": 2')
    assert write_report(s, figures=False) == 0
    return s / "report"


def _wait(browser, script: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _open(browser, page: Path) -> None:
    browser.get(page.as_uri())
    _wait(browser, "return document.readyState === 'complete'")


def _images_loaded(browser) -> list:
    """[(src, naturalWidth)] of every <img>, each scrolled into view first (thumbnails load lazily)."""
    browser.execute_script("Array.from(document.images).forEach(i => i.scrollIntoView())")
    browser.execute_script("window.scrollTo(0, 0)")
    _wait(browser, "return Array.from(document.images).every(i => i.complete)")
    return browser.execute_script("return Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")


def _screenshot(browser, tmp_path: Path, name: str) -> np.ndarray:
    path = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(path))
    if os.environ.get("PNP_SCREENSHOTS"):
        Path(os.environ["PNP_SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(os.environ["PNP_SCREENSHOTS"]) / path.name)
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert arr.shape[0] > 500 and arr.shape[1] > 1000
    assert arr.std() > 10, "blank screenshot"
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 200, "screenshot without images"
    return arr


def _column(browser, col: int) -> list[str]:
    return browser.execute_script(
        f"return Array.from(document.querySelectorAll('#summary tbody tr')).map(r => r.cells[{col}].textContent.trim())")


def test_index_table_sorts_links_and_names_every_bad_job(browser, sweep_page, tmp_path):
    from selenium.webdriver.common.by import By

    _open(browser, sweep_page / "index.html")
    images = _images_loaded(browser)
    assert len(images) == 5, images  # a thumbnail per finished (method, problem) cell
    assert all(width > 0 for _, width in images), images
    text = browser.find_element(By.TAG_NAME, "body").text
    for needle in ("incompatible: solver 'fista' needs prox", "RuntimeError: planted failure",
                   "corrupted metrics.json", "im1/restored.png"):
        assert needle in text, needle
    methods = _column(browser, 0)
    assert methods == ["tv + gd", "red + gd", "dmsp + langevin", "baseline: observed"]
    best = browser.find_elements(By.CSS_SELECTOR, "#summary td.best")
    assert [b.text for b in best] == ["27.50 / 0.500", "30.50 / 0.500"]  # red, marked in both columns
    blur = browser.find_elements(By.CSS_SELECTOR, "#summary thead th")[1]
    assert blur.text.startswith("blur")
    blur.find_element(By.CSS_SELECTOR, "button.sort").click()
    assert _column(browser, 0) == ["red + gd", "dmsp + langevin", "tv + gd", "baseline: observed"]
    blur.find_element(By.CSS_SELECTOR, "button.sort").click()
    assert _column(browser, 0) == ["baseline: observed", "tv + gd", "dmsp + langevin", "red + gd"]
    browser.find_elements(By.CSS_SELECTOR, "#summary thead th")[0].find_element(By.CSS_SELECTOR, "button.sort").click()
    assert _column(browser, 0) == sorted(methods)
    _screenshot(browser, tmp_path, "index")
    browser.find_element(By.CSS_SELECTOR, "#summary td.best a").click()
    _wait(browser, "return document.readyState === 'complete' && location.pathname.endsWith('problem_blur.html')")


def _transforms(browser) -> list[str]:
    return browser.execute_script("return Array.from(document.querySelectorAll('#grid .box img')).map(i => i.style.transform)")


def _scale(transform: str) -> float:
    return float(transform.split("scale(")[1].rstrip(")"))


def test_problem_view_zooms_pans_and_toggles_errors_together(browser, sweep_page, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By

    _open(browser, sweep_page / "problem_blur.html")
    images = _images_loaded(browser)
    assert all(width > 0 for _, width in images), images
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#grid figcaption")]
    assert captions[:2] == ["ground truth", "observed · 20.00 dB"]
    assert captions[2:5] == ["tv + gd · 25.00 dB", "red + gd · 27.00 dB", "dmsp + langevin · 26.00 dB"]
    assert browser.execute_script("return Array.from(document.querySelectorAll('#grid figure.best'))"
                                  ".map(f => f.querySelector('b').textContent)") == ["red + gd"]
    assert "dmsp + langevin: uncertainty (std, yellow = 5.1/255)" in captions
    assert "dmsp + langevin: sample 3 of 5" in captions and "dmsp + langevin: sample 4 of 5" not in captions
    boxes = browser.find_elements(By.CSS_SELECTOR, "#grid .box:not(.missing)")
    assert len(boxes) == len(_transforms(browser)) == 9  # gt, observed, 3 methods, uncertainty, 3 samples

    before = _transforms(browser)
    assert set(before) == {"translate(0px, 0px) scale(1)"}
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(boxes[3]), 0, -300).perform()
    _wait(browser, "return document.querySelector('#grid .box img').style.transform !== 'translate(0px, 0px) scale(1)'")
    zoomed = _transforms(browser)
    assert len(set(zoomed)) == 1 and _scale(zoomed[0]) > 1.5, zoomed  # one wheel on one image zoomed them all
    assert all(browser.execute_script("return Array.from(document.querySelectorAll('#grid .box img'))"
                                      ".map(i => i.classList.contains('pixelated'))"))
    ActionChains(browser).drag_and_drop_by_offset(boxes[4], 40, 25).perform()
    panned = _transforms(browser)
    assert len(set(panned)) == 1 and panned[0] != zoomed[0] and _scale(panned[0]) == _scale(zoomed[0]), panned

    sources = "return Array.from(document.querySelectorAll('#grid .box img')).map(i => i.getAttribute('src'))"
    plain = browser.execute_script(sources)
    toggle = browser.find_element(By.ID, "error-toggle")
    toggle.click()
    errors = browser.execute_script(sources)
    changed = [(a, b) for a, b in zip(plain, errors) if a != b]
    assert len(changed) == 3, changed  # the three methods; ground truth, observation (other size), sampler: as they were
    assert all("/error_" in b for _, b in changed)
    assert browser.find_element(By.ID, "legend").is_displayed()
    assert all(width > 0 for _, width in _images_loaded(browser))
    data = json.loads(browser.find_element(By.ID, "viewer-data").get_attribute("textContent"))
    assert data["images"][0]["vmax"] in (1, 2, 5, 10, 20, 50, 100, 255)
    missing = browser.find_elements(By.CSS_SELECTOR, "#grid .box.missing")
    assert not missing  # im0 has every file
    _screenshot(browser, tmp_path, "problem_blur_error")
    toggle.click()
    assert browser.execute_script(sources) == plain

    browser.find_elements(By.CSS_SELECTOR, "#images button.pick")[1].click()  # im1: dmsp's restored.png is missing
    missing = browser.find_elements(By.CSS_SELECTOR, "#grid .box.missing")
    assert [m.text for m in missing] == ["missing: restored.png"]
    assert len(set(_transforms(browser))) == 1 and _transforms(browser)[0] == panned[0]  # the zoom is kept
    assert all(width > 0 for _, width in _images_loaded(browser))


def test_single_run_compare_page(browser, tmp_path, color_png):
    from selenium.webdriver.common.by import By

    from pnp.api import compose_config
    from pnp.job import run

    cfg = compose_config(op="denoise", prior="tv", overrides={"image": str(color_png), "solver.iterations": 2})
    run(cfg, tmp_path / "run", progress=False)
    _open(browser, tmp_path / "run" / "compare.html")
    images = _images_loaded(browser)
    assert [src for src, _ in images] == ["ground_truth.png", "observed.png", "restored.png"]
    assert all(width > 0 for _, width in images), images
    browser.find_element(By.ID, "error-toggle").click()
    srcs = browser.execute_script("return Array.from(document.querySelectorAll('#grid .box img')).map(i => i.getAttribute('src'))")
    assert srcs[0] == "ground_truth.png" and srcs[1:] == ["compare_files/error_observed.png", "compare_files/error_m0.png"]
    assert all(width > 0 for _, width in _images_loaded(browser))
    assert browser.find_elements(By.CSS_SELECTOR, ".curves svg polyline.curve")
