"""A headless Chromium (Debian's `chromium` package) driven over its DevTools protocol, for tests
that must see a page as a browser does: what loaded, what the console said, what CSP refused.

    with Chromium() as browser:
        browser.open("http://127.0.0.1:8000/")
        browser.evaluate("document.title")
        browser.screenshot()               # PNG bytes of the whole page
        browser.problems()                 # console errors, exceptions, CSP violations so far

It runs with a throw-away profile under the system's temporary folder (never in the checkout,
which may be a 0700 folder of another user) and, as root, with --no-sandbox (Chromium refuses
to start as root otherwise).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websocket

#: Where Debian installs it; `TS_CHROMIUM` names another binary.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Recorded from the page itself, before any of its own scripts run; CDP-injected scripts are not
# subject to the page's Content-Security-Policy.
_WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def chromium_path() -> str | None:
    """The Chromium binary to use, or None when none is installed."""
    named = os.environ.get("TS_CHROMIUM")
    if named:
        return named if shutil.which(named) else None
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one tab; a context manager."""

    def __init__(self, *, width: int = 1280, height: int = 900, timeout_s: float = 30.0) -> None:
        binary = chromium_path()
        if binary is None:
            raise BrowserError("no chromium binary found")
        self.binary = binary
        self.width, self.height = width, height
        self.timeout_s = timeout_s
        self._profile = tempfile.mkdtemp(prefix="ts-chromium-", dir=tempfile.gettempdir())
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: websocket.WebSocket | None = None
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        arguments = [
            self.binary, "--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
            f"--user-data-dir={self._profile}", "--remote-debugging-port=0",
            f"--window-size={self.width},{self.height}", "about:blank",
        ]
        if os.geteuid() == 0:
            arguments.insert(1, "--no-sandbox")
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(arguments, stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self._profile)
        try:
            self._connect()
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Page.addScriptToEvaluateOnNewDocument", source=_WATCH)
            self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _connect(self) -> None:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if self._process is not None and self._process.poll() is not None:
                self._log.seek(0)
                raise BrowserError(f"chromium exited: {self._log.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise BrowserError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
        page = next(t for t in targets if t.get("type") == "page")
        self._socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout_s,
                                                   suppress_origin=True)

    def __exit__(self, *exc_info: object) -> None:
        if self._socket is not None:
            self._socket.close()
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            try:  # its helper processes (renderers, GPU, zygote) share the session it started
                os.killpg(self._process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if hasattr(self, "_log"):
            self._log.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    # --- the protocol ----------------------------------------------------------------------------

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call `method` and return its result; events that arrive meanwhile are kept in `events`."""
        assert self._socket is not None
        self._next_id += 1
        ident = self._next_id
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, event: str, *, after: int) -> dict[str, Any]:
        """The first `event` among those received after `events[after]`, waiting for it."""
        assert self._socket is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            for message in self.events[after:]:
                if message["method"] == event:
                    return message
            if time.monotonic() > deadline:
                raise BrowserError(f"no {event} within {self.timeout_s} s")
            message = json.loads(self._socket.recv())
            if "method" in message:
                self.events.append(message)

    # --- what tests use --------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate to `url` and wait for its load event."""
        mark = len(self.events)
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"{url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired", after=mark)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click_and_wait(self, selector: str) -> None:
        """Click the first element matching `selector` and wait for the page it leads to."""
        mark = len(self.events)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        self.wait_for("Page.loadEventFired", after=mark)

    def color_scheme(self, scheme: str) -> None:
        """Emulate `prefers-color-scheme: light` or `dark`."""
        self.send("Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}])

    def press_tab(self) -> None:
        """One Tab key press, as a keyboard user would (focus moves, :focus-visible applies)."""
        for kind in ("rawKeyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key="Tab", code="Tab", windowsVirtualKeyCode=9)

    def screenshot(self) -> bytes:
        """A PNG of the whole page (up to 4,000 px tall)."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": self.width, "height": min(int(size["height"]) + 1, 4000), "scale": 1}
        data = self.send("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]
        return base64.b64decode(data)

    def mark(self) -> int:
        """A position in `events`, for `problems(after=...)`."""
        return len(self.events)

    def problems(self, *, after: int = 0) -> list[str]:
        """Console errors, uncaught exceptions, error log entries (CSP reports among them) since
        `events[after]`, and the securitypolicyviolation events of the current document."""
        found = []
        for message in self.events[after:]:
            method, params = message["method"], message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(f"console: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails', {}).get('text')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                found.append(f"log: {entry.get('source')} {entry.get('text')} {entry.get('url', '')}")
        found += [f"csp: {v}" for v in (self.evaluate("window.__violations || []") or [])]
        return found
