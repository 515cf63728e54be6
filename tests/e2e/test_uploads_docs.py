"""/docs in a real browser: Swagger UI's "Try it out" on `POST /thumb/{spec}` with a file sends a
multipart form the server makes a thumbnail of, and shows it, with no CSP violation.

Uses the gallery's headless Chromium driver (tests/support/browser.py); without it, or without a
chromium binary, this skips (tests/e2e/test_gallery_browser.py makes CI require the browser).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import images
from tests.support.live import LiveServer
from tests.support.probe import write_config

browser = pytest.importorskip("tests.support.browser", reason="tests/support/browser.py (the gallery's) is absent")
if browser.chromium_path() is None:
    pytestmark = pytest.mark.skip(reason="no chromium binary (.ci/run installs it)")

OPERATION = "#operations-images-upload_thumb__spec__post"


def until(expression: str, *, tries: int = 200) -> str:
    """JavaScript awaiting `expression` to be truthy, polled every 50 ms, at most `tries` times."""
    return f"""(async () => {{
      for (let i = 0; i < {tries}; i++) {{
        const value = {expression};
        if (value) return value;
        await new Promise((done) => setTimeout(done, 50));
      }}
      return null;
    }})()"""


def test_try_it_out_with_a_file(tmp_path: Path, root: Path) -> None:
    photo = images.write(tmp_path / "photo.jpg", images.jpeg_bytes((640, 480), image=images.textured((640, 480))))
    config = write_config(tmp_path / "config.yaml", cache={"shared": "none"}, uploads={"enabled": True})
    with LiveServer(config, root) as live, browser.Chromium(height=2000) as page:
        page.open(f"{live.url}/docs")
        assert page.evaluate(until(f"!!document.querySelector('{OPERATION} .opblock-summary-control')"))
        page.evaluate(f"document.querySelector('{OPERATION} .opblock-summary-control').click()")
        assert page.evaluate(until(f"!!document.querySelector('{OPERATION} .try-out__btn')"))
        page.evaluate(f"document.querySelector('{OPERATION} .try-out__btn').click()")
        assert page.evaluate(until(f"!!document.querySelector('{OPERATION} input[type=file]')"))
        # The body's media type offered first is the multipart form.
        assert page.evaluate(f"document.querySelector('{OPERATION} .body-param-content-type select').value") \
            == "multipart/form-data"
        # Typed as a person would (React owns the input's value); Swagger UI debounces a typed
        # parameter and commits it at once when the field loses focus.
        page.evaluate(f"document.querySelector('{OPERATION} input[placeholder=spec]').focus()")
        page.send("Input.insertText", text="100x100,cover,png")
        page.evaluate(f"document.querySelector('{OPERATION} input[placeholder=spec]').blur()")
        document = page.send("DOM.getDocument", depth=-1)
        node = page.send("DOM.querySelector", nodeId=document["root"]["nodeId"], selector=f"{OPERATION} input[type=file]")
        page.send("DOM.setFileInputFiles", nodeId=node["nodeId"], files=[str(photo)])
        page.evaluate(f"document.querySelector('{OPERATION} .execute').click()")
        answered = page.evaluate(until(f"!!document.querySelector('{OPERATION} .live-responses-table tbody .response-col_status')",
                                       tries=400))
        assert answered, page.evaluate(f"document.querySelector('{OPERATION}').innerText")[:3000]
        status = page.evaluate(f"document.querySelector('{OPERATION} .live-responses-table tbody .response-col_status').innerText")
        shown = page.evaluate(until(f"""(() => {{
          const img = document.querySelector('{OPERATION} .live-responses-table img');
          return img && img.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null;
        }})()"""))
        headers = page.evaluate(f"document.querySelector('{OPERATION} .live-responses-table tbody .response-col_description').innerText")
        curl = page.evaluate(f"document.querySelector('{OPERATION} .curl-command').innerText")
        problems = page.problems()
    assert status.strip() == "200", json.dumps([status, headers])
    assert shown == [100, 100]
    assert "content-type: image/png" in headers and "cache-control: no-store" in headers
    assert "multipart/form-data" in curl and "file=@photo.jpg;type=image/jpeg" in curl
    assert problems == []
