"""The explorer end to end in a real headless Chromium (Debian's ``chromium`` + ``chromedriver``, Selenium).

The test uploads the two bundled photos through the page's file input, moves the
morph slider with the keyboard to alpha = 0.5, applies an age edit, renders a short
video and downloads it. The image the page shows at alpha = 0.5 is fetched from
the page itself and must decode to exactly the pixels of the library's render of
the same code. Screenshots go to ``$EXPLORER_ARTEFACTS`` (default ``out/explorer-browser/``,
git-ignored).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("EXPLORER_ARTEFACTS", REPO / "out" / "explorer-browser"))


def _skip(reason: str) -> None:
    print(f"skipping the browser test: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip("selenium is not installed (pip install -e '.[test]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if browser is None or chromedriver is None:
        _skip("no chromium/chromedriver on PATH (apt-get install chromium chromium-driver; .ci/run does this)")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    try:
        d = webdriver.Chrome(service=Service(chromedriver), options=options)
    except Exception as err:  # a browser that cannot start here is the same as none
        _skip(f"chromium did not start: {' '.join(str(err).split())[:200]}")
    d.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    d.downloads = downloads
    d.set_script_timeout(30)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    from tools.explorer import Explorer, ExplorerConfig, bind, create_app

    torch.set_num_threads(1)
    explorer = Explorer(ExplorerConfig(refine=0, cache_dir=tmp_path_factory.mktemp("codes"), gallery_size=8))
    app = create_app(explorer=explorer)
    server = bind(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield explorer, f"http://127.0.0.1:{server.port}/"
    server.shutdown()
    explorer.close()


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def shown_view(driver) -> dict | None:
    """The view of the frame on screen, once no newer request is pending."""
    img = driver.find_element("id", "frame")
    if img.get_attribute("data-busy") == "1" or not img.get_attribute("data-view"):
        return None
    return json.loads(img.get_attribute("data-view"))


def shown_pixels(driver) -> np.ndarray:
    """Fetch the bytes behind the <img> the page shows, in the page, and decode them here."""
    data = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById('frame').src).then(r => r.arrayBuffer()).then(buf => {
            let s = ''; const b = new Uint8Array(buf);
            for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
            done(btoa(s));
        }).catch(e => done('error:' + e));
    """)
    assert not data.startswith("error:"), data
    raw = base64.b64decode(data)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "the page must show the lossless PNG the server sent"
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def move_slider(driver, element_id: str, pages: int, steps: int = 0) -> None:
    """Move a range input with the keyboard, as a user would: Home, Page Up ``pages`` times
    (a tenth of the range each, in Chromium), then the Right arrow ``steps`` times."""
    from selenium.webdriver.common.keys import Keys

    slider = driver.find_element("id", element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", slider)
    slider.send_keys(Keys.HOME, *[Keys.PAGE_UP] * pages, *[Keys.ARROW_RIGHT] * steps)


def test_upload_morph_edit_export_in_chromium(driver, served):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from stylegan.editing import apply_edit
    from stylegan.interpolation import lerp
    from stylegan.render import render_images

    explorer, url = served
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    driver.get(url)
    wait_for(lambda: driver.find_element("tag name", "body").get_attribute("data-ready") == "1", what="the page")

    # Upload both bundled photos in one go through the file input.
    photos = [str(p) for p in explorer.examples[:2]]
    driver.find_element("id", "photos").send_keys("\n".join(photos))
    driver.find_element("id", "upload").click()
    ready = "#face-list .face[data-status=ready]"
    wait_for(lambda: len(driver.find_elements("css selector", ready)) == 2, timeout=120, what="both photos encoded")
    ids = [c.get_attribute("data-id") for c in driver.find_elements("css selector", ready)]
    session = explorer.sessions.get(driver.get_cookie("sgm_explorer")["value"])
    wa, wb = session.face(ids[0]).ws, session.face(ids[1]).ws

    # Move the morph slider to alpha = 0.5 with the keyboard.
    move_slider(driver, "alpha", 5)  # 0 .. 100 in pages of 10
    view = wait_for(lambda: (v := shown_view(driver)) and v["alpha"] == 0.5 and v, what="the frame at alpha 0.5")
    assert (view["a"], view["b"]) == (ids[0], ids[1])
    expected = render_images(explorer.G, lerp(wa, wb, 0.5).unsqueeze(0), batch_size=1)[0]
    shown = shown_pixels(driver)
    np.testing.assert_array_equal(shown, expected)
    driver.save_screenshot(str(ARTEFACTS / "1_morph.png"))

    # An age edit (the first direction if this model has none called age).
    names = list(explorer.directions)
    assert names, "the default model offers edit directions"
    name = "age" if "age" in names else names[0]
    print(f"editing along {name!r}")
    move_slider(driver, f"edit-{name}", 8, 2)  # Home is -3; 8 pages of 0.6 and 2 steps of 0.1 make +2
    view = wait_for(lambda: (v := shown_view(driver)) and v["edits"].get(name) == 2 and v, what="the edited frame")
    edited = render_images(explorer.G, apply_edit(lerp(wa, wb, 0.5), explorer.directions[name], 2.0).unsqueeze(0),
                           batch_size=1)[0]
    np.testing.assert_array_equal(shown_pixels(driver), edited)
    assert not np.array_equal(edited, expected)
    driver.save_screenshot(str(ARTEFACTS / "2_edit.png"))

    # Undo takes back the last change (one key press), then the edit is redone.
    driver.find_element("id", "undo").click()
    wait_for(lambda: (v := shown_view(driver)) and v["edits"].get(name) == 1.9, what="undo")
    assert driver.find_element("id", f"edit-{name}").get_attribute("value") == "1.9"
    driver.find_element("id", f"edit-{name}").send_keys(Keys.ARROW_RIGHT)
    wait_for(lambda: (v := shown_view(driver)) and v["edits"].get(name) == 2, what="the edit again")

    # Export a short video of the morph (with the edit) and download it.
    steps = driver.find_element("id", "steps")
    steps.clear()
    steps.send_keys("8")
    driver.find_element("id", "export").click()
    link = wait_for(lambda: (a := driver.find_element("id", "export-link")).is_displayed() and a, timeout=120,
                    what="the video")
    driver.save_screenshot(str(ARTEFACTS / "3_export.png"))
    link.click()
    video = wait_for(lambda: next((p for p in driver.downloads.glob("morph*.mp4")), None), timeout=30,
                     what="the download")
    wait_for(lambda: not list(driver.downloads.glob("*.crdownload")), what="the download to finish")
    data = video.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) > 1000
    assert "8 frames" in driver.find_element("id", "export-status").text

    # A third face (a bundled example, from the cache) joins the map; clicking its point selects it as A.
    driver.find_element("css selector", "#examples button[data-example='0']").click()
    wait_for(lambda: len(driver.find_elements("css selector", ready)) == 3, timeout=60, what="the third face")
    third = [c.get_attribute("data-id") for c in driver.find_elements("css selector", ready)][2]
    point = wait_for(lambda: next(iter(driver.find_elements("css selector", f"#map g[data-id='{third}']")), None),
                     what="the third face on the map")
    assert len(driver.find_elements("css selector", "#map g[data-kind=face]")) == 3
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", point)
    point.click()
    wait_for(lambda: (v := shown_view(driver)) and v["a"] == third, what="the map click to select the face")
    assert "(cached)" in driver.find_element("css selector", f".face[data-id='{third}'] .state").text
    gallery = driver.find_elements("css selector", "#map g[data-kind=gallery]")
    assert len(gallery) == len(explorer.gallery())
    if gallery:  # a model with a sampler: a click on a gallery face adds it and makes it B
        Select(driver.find_element("id", "map-target")).select_by_value("b")
        gallery[0].click()
        wait_for(lambda: len(driver.find_elements("css selector", ready)) == 4, what="the gallery face")
        fourth = [c.get_attribute("data-id") for c in driver.find_elements("css selector", ready)][3]
        wait_for(lambda: (v := shown_view(driver)) and v["b"] == fourth, what="the gallery face as B")
        assert torch.equal(session.face(fourth).ws, explorer.gallery()[0])
    driver.execute_script("window.scrollTo(0, 0);")
    driver.save_screenshot(str(ARTEFACTS / "4_map.png"))
    assert not driver.find_element("id", "message").text, driver.find_element("id", "message").text
    print(f"browser test took {time.monotonic() - start:.1f} s; screenshots in {ARTEFACTS}")
