"""The gallery in a real browser: Debian's headless Chromium against a live server.

From the browser: every thumbnail loads at the size its markup promises, no console error and no
Content-Security-Policy violation occurs, hostile file names are text (no injected element),
links lead where they should, keyboard focus is visible, and both colour schemes render.
Screenshots are kept as artefacts: in the test's tmp_path, and copied to $TS_ARTEFACTS (default:
the checkout's git-ignored .artefacts/gallery) when that folder can be written.

Without a chromium binary these tests skip, loudly; with TS_REQUIRE_BROWSER=1 (set by .ci/run,
which installs chromium) they fail instead, so CI never passes without running them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from tests.support import images
from tests.support.browser import Chromium, chromium_path
from tests.support.live import LiveServer

HOSTILE = ["<img src=x onerror=alert(1)>.jpg", '"quotes".png', "naïve café.jpg", "a#b?c.jpg"]
PAGE_SIZE = 5
MANY = 12

if chromium_path() is None:
    message = ("CHROMIUM NOT INSTALLED: the gallery's browser tests are SKIPPED "
               "(apt-get install chromium; .ci/run installs it)")
    if os.environ.get("TS_REQUIRE_BROWSER") == "1":
        raise RuntimeError(message + " but TS_REQUIRE_BROWSER=1")
    warnings.warn(message, stacklevel=1)
    pytestmark = pytest.mark.skip(reason=message)

# Scroll every image into view in turn (they are lazy), wait for each to load or fail, and
# report what the browser decoded.
THUMBNAILS = """
(async () => {
  const out = [];
  for (const img of document.querySelectorAll("img")) {
    img.scrollIntoView();
    if (!img.complete) {
      await new Promise((done) => {
        img.addEventListener("load", done, {once: true});
        img.addEventListener("error", done, {once: true});
      });
    }
    out.push({src: img.currentSrc, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
              alt: img.alt, attrWidth: img.getAttribute("width"), attrHeight: img.getAttribute("height")});
  }
  window.scrollTo(0, 0);
  return out;
})()
"""


# The WCAG 2 contrast ratio of every element with text against its effective background.
CONTRAST = """
(() => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 4).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const luminance = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const out = [];
  for (const e of document.querySelectorAll("h1, h2, a, span, dt, dd, label, button, code, p, li")) {
    if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const [l1, l2] = [luminance(rgb(getComputedStyle(e).color)), luminance(background(e))];
    out.push([e.tagName + "." + e.className + " " + e.textContent.slice(0, 20),
              (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05)]);
  }
  return out;
})()
"""


# The size shown under each name in the grid, by name ("" when none is shown).
SIZES = ("Object.fromEntries([...document.querySelectorAll('.grid a')].map(a => "
         "[a.querySelector('.name').textContent, a.querySelector('.size')?.textContent ?? '']))")


def photo(size: tuple[int, int], seed: int) -> bytes:
    return images.jpeg_bytes(size, image=images.textured(size, seed=seed))


@pytest.fixture(scope="module")
def gallery_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gallery") / "images"
    images.write(root / "landscape.jpg", photo((640, 480), 1))
    images.write(root / "portrait.jpg", images.jpeg_bytes((640, 480), orientation=6,
                                                          image=images.textured((640, 480), seed=2)))
    images.write(root / "alpha.png", images.png_bytes((400, 400), mode="RGBA", image=images.gradient((400, 400), "RGBA")))
    images.write(root / "anim.gif", images.gif_bytes(("red", "lime", "blue"), size=(400, 300)))
    images.write(root / "nested" / "deeper" / "inner.jpg", photo((500, 400), 3))
    images.write(root / "nested" / "outer.jpg", photo((400, 500), 4))
    for index, name in enumerate(HOSTILE):
        data = photo((420, 420), 10 + index)
        images.write(root / "hostile" / name, data if name.endswith(".jpg") else images.png_bytes(
            (420, 420), mode="RGB", image=images.textured((420, 420), seed=10 + index)))
    for n in range(1, MANY + 1):
        images.write(root / "many" / f"shot{n}.jpg", photo((400, 400), 100 + n))
    return root


@pytest.fixture(scope="module")
def server(gallery_root: Path) -> Iterator[LiveServer]:
    env = {"THUMBSERVER_BROWSE_ENABLED": "true", "THUMBSERVER_BROWSE_PAGE_SIZE": str(PAGE_SIZE)}
    with LiveServer(None, gallery_root, env=env) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(width=1280, height=900) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    target = Path(os.environ.get("TS_ARTEFACTS") or Path(__file__).resolve().parents[2] / ".artefacts") / "gallery"
    try:
        target.mkdir(parents=True, exist_ok=True)
        for shot in folder.glob("*.png"):
            shutil.copy2(shot, target / shot.name)
    except OSError as error:  # a read-only checkout keeps them in tmp_path only
        warnings.warn(f"screenshots kept in {folder} only: {error}", stacklevel=1)


def visit(browser: Chromium, url: str) -> int:
    """Open `url` in the light scheme; the events mark before it."""
    browser.color_scheme("light")
    mark = browser.mark()
    browser.open(url)
    return mark


def assert_thumbnails_loaded(browser: Chromium, *, side: int | None) -> list[dict]:
    loaded = browser.evaluate(THUMBNAILS)
    assert loaded, "no image on the page"
    for img in loaded:
        assert img["complete"] and img["width"] > 0, img
        if side is not None:  # square covers: the markup's 200 x 200 at 1x
            assert (img["width"], img["height"]) == (side, side), img
            assert (img["attrWidth"], img["attrHeight"]) == (str(side), str(side))
    return loaded


def assert_no_problems(browser: Chromium, mark: int) -> None:
    assert browser.problems(after=mark) == []


def shoot(browser: Chromium, artefacts: Path, name: str) -> dict[str, Image.Image]:
    """Screenshots of the page in both schemes, checked not blank, saved as artefacts."""
    shots = {}
    backgrounds = {}
    for scheme in ("light", "dark"):
        browser.color_scheme(scheme)
        backgrounds[scheme] = browser.evaluate("getComputedStyle(document.body).backgroundColor")
        browser.evaluate(THUMBNAILS)  # the scheme's repaint done, every image still there
        png = browser.screenshot()
        (artefacts / f"{name}-{scheme}.png").write_bytes(png)
        image = Image.open(io.BytesIO(png)).convert("RGB")
        colours = image.getcolors(maxcolors=1 << 22) or []
        assert len(colours) > 64, f"{name} {scheme}: {len(colours)} colours, a blank page?"
        most = max(count for count, _ in colours)
        assert most < 0.97 * image.width * image.height, f"{name} {scheme}: one colour covers the page"
        shots[scheme] = image
    assert backgrounds == {"light": "rgb(255, 255, 255)", "dark": "rgb(19, 19, 22)"}
    corner = {scheme: shot.getpixel((2, 2)) for scheme, shot in shots.items()}
    assert corner["light"] == (255, 255, 255) and corner["dark"] == (19, 19, 22)
    browser.color_scheme("light")
    return shots


class TestGalleryInChromium:
    """Root, a nested folder, a paginated folder and an image page, as a browser shows them."""

    def test_root(self, server: LiveServer, browser: Chromium, artefacts: Path) -> None:
        mark = visit(browser, server.url + "/")
        loaded = assert_thumbnails_loaded(browser, side=200)
        assert sorted(img["alt"] for img in loaded) == ["alpha.png", "anim.gif", "landscape.jpg", "portrait.jpg"]
        folders = browser.evaluate("[...document.querySelectorAll('.folders a')].map(a => a.textContent)")
        assert folders == ["hostile/", "many/", "nested/"]
        # Each cell shows its displayed size under its name (portrait.jpg: EXIF orientation 6).
        assert browser.evaluate(SIZES) == {"alpha.png": "400 × 400", "anim.gif": "400 × 300",
                                           "landscape.jpg": "640 × 480", "portrait.jpg": "480 × 640"}
        shoot(browser, artefacts, "root")
        assert_no_problems(browser, mark)

    def test_nested_folder(self, server: LiveServer, browser: Chromium, artefacts: Path) -> None:
        visit(browser, server.url + "/")
        mark = browser.mark()
        browser.click_and_wait(".folders a[href='/nested/']")
        assert browser.evaluate("location.pathname") == "/nested/"
        browser.click_and_wait(".folders a[href='/nested/deeper/']")
        assert browser.evaluate("location.pathname") == "/nested/deeper/"
        crumbs = browser.evaluate("[...document.querySelectorAll('.crumbs a')].map(a => a.getAttribute('href'))")
        assert crumbs == ["/", "/nested/", "/nested/deeper/"]
        loaded = assert_thumbnails_loaded(browser, side=200)
        assert [img["alt"] for img in loaded] == ["inner.jpg"]
        browser.click_and_wait(".crumbs a[href='/nested/']")
        assert browser.evaluate("location.pathname") == "/nested/"
        assert browser.evaluate(SIZES) == {"outer.jpg": "400 × 500"}
        shoot(browser, artefacts, "folder")
        assert_no_problems(browser, mark)

    def test_paginated_folder(self, server: LiveServer, browser: Chromium, artefacts: Path) -> None:
        mark = visit(browser, server.url + "/many/")
        seen = []
        for page in range(1, 4):
            loaded = assert_thumbnails_loaded(browser, side=200)
            seen += [img["alt"] for img in loaded]
            assert browser.evaluate("location.search") == ("" if page == 1 else f"?page={page}")
            if page == 1:
                shoot(browser, artefacts, "paginated")
            if page < 3:
                browser.click_and_wait("a[rel=next]")
        assert seen == [f"shot{n}.jpg" for n in range(1, MANY + 1)]
        assert browser.evaluate("document.querySelector('a[rel=next]')") is None
        assert_no_problems(browser, mark)

    def test_hostile_names(self, server: LiveServer, browser: Chromium, artefacts: Path) -> None:
        mark = visit(browser, server.url + "/hostile/")
        names = []
        for page in (1,):  # 4 names, one page of 5
            assert_thumbnails_loaded(browser, side=200)
            names += browser.evaluate("[...document.querySelectorAll('.name')].map(e => e.textContent)")
        assert sorted(names) == sorted(HOSTILE)
        assert browser.evaluate("document.querySelectorAll('[onerror], img[src=x], script').length") == 0
        assert browser.evaluate("window.alerted === undefined")
        shoot(browser, artefacts, "hostile")
        for name in HOSTILE:
            visit(browser, server.url + "/hostile/")
            href = "/view/hostile/" + quote(name, safe="")
            browser.click_and_wait(f"a[href={json.dumps(href)}]")
            assert browser.evaluate("decodeURIComponent(location.pathname)") == "/view/hostile/" + name
            assert browser.evaluate("document.querySelector('h1').textContent") == name
            loaded = assert_thumbnails_loaded(browser, side=None)
            assert loaded[0]["width"] == 420 and loaded[0]["alt"] == name
            assert browser.evaluate("document.querySelectorAll('[onerror], img[src=x]').length") == 0
            original = browser.evaluate(
                "[...document.querySelectorAll('main p a')].find(a => a.textContent === 'Open the original').href")
            assert original == server.url + "/hostile/" + quote(name, safe="")
        assert_no_problems(browser, mark)

    def test_image_page(self, server: LiveServer, browser: Chromium, artefacts: Path) -> None:
        mark = visit(browser, server.url + "/")
        browser.click_and_wait(".grid a[href='/view/portrait.jpg']")
        assert browser.evaluate("location.pathname") == "/view/portrait.jpg"
        loaded = assert_thumbnails_loaded(browser, side=None)
        # EXIF orientation 6: displayed 480 x 640; at 1x the 480w candidate is the one chosen.
        assert (loaded[0]["width"], loaded[0]["height"]) == (480, 640)
        assert (loaded[0]["attrWidth"], loaded[0]["attrHeight"]) == ("480", "640")
        facts = browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('dt')].map(dt => [dt.textContent, "
            "dt.nextElementSibling.textContent]))")
        assert facts["Size"] == "480 × 640 px" and facts["EXIF orientation"] == "6"
        assert facts["Format"] == "jpeg (image/jpeg)"
        # The copy buttons are the script's enhancement: shown only because it ran under the CSP.
        assert browser.evaluate("[...document.querySelectorAll('button[data-copy]')].every(b => !b.hidden)")
        urls = browser.evaluate("[...document.querySelectorAll('.copy input')].map(i => i.value)")
        assert server.url + "/portrait.jpg" in urls and server.url + "/info/portrait.jpg" in urls
        snippet = browser.evaluate("document.getElementById('u-srcset').value")
        assert snippet.startswith(f'<img src="{server.url}/thumb/480x/portrait.jpg"') and "320w" in snippet
        shoot(browser, artefacts, "image")
        assert_no_problems(browser, mark)

    @pytest.mark.parametrize("scheme", ["light", "dark"])
    def test_text_contrast(self, server: LiveServer, browser: Chromium, scheme: str) -> None:
        """Every text on the folder and image pages has a contrast of at least 4.5:1 (WCAG AA)."""
        for url in ("/many/", "/view/landscape.jpg"):
            visit(browser, server.url + url)
            browser.color_scheme(scheme)
            ratios = browser.evaluate(CONTRAST)
            assert len(ratios) > 10
            low = [(text, round(ratio, 2)) for text, ratio in ratios if ratio < 4.5]
            assert low == []
        browser.color_scheme("light")

    def test_keyboard_focus_visible(self, server: LiveServer, browser: Chromium) -> None:
        visit(browser, server.url + "/")
        browser.press_tab()
        focused = browser.evaluate(
            "(() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.tagName, e.getAttribute('href'), s.outlineStyle, s.outlineWidth]; })()")
        assert focused[:2] == ["A", "/"]
        assert focused[2] == "solid" and focused[3] == "3px"
