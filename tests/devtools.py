"""Headless Chromium driven through the DevTools protocol over a pipe (standard library only, no driver binary).

Used by the browser tests of the report (tests/test_report_browser.py): :class:`HeadlessChromium` opens a page and
reports console errors, failed loads and uncaught exceptions; :func:`screenshot` takes a PNG of a page.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


#: Executables tried, in order, when ``$CHROMIUM`` is not set.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def chromium_path() -> str | None:
    """The Chromium executable: ``$CHROMIUM`` if set, else the first of :data:`CHROMIUM_NAMES` on PATH."""
    if os.environ.get("CHROMIUM"):
        return shutil.which(os.environ["CHROMIUM"])
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class BrowserError(RuntimeError):
    """Chromium could not be started, or a DevTools command failed or timed out."""


class HeadlessChromium:
    """Headless Chromium driven by the DevTools protocol over ``--remote-debugging-pipe``.

    Standard library only: Chromium reads commands from fd 3 and writes replies and events to fd 4, each a
    JSON message ended by a NUL byte. One page (tab) per instance. Use as a context manager::

        with HeadlessChromium() as browser:
            problems = browser.open(Path("index.html"))    # console errors, failed loads, uncaught exceptions
            n = browser.evaluate("document.images.length")
            browser.screenshot(Path("page.png"))
    """

    def __init__(self, width: int = 1280, height: int = 900, executable: str | None = None,
                 timeout: float = 60.0) -> None:
        self.width, self.height, self.timeout = int(width), int(height), float(timeout)
        exe = executable or chromium_path()
        if not exe:
            raise BrowserError(f"no Chromium found (tried $CHROMIUM and {list(CHROMIUM_NAMES)}); "
                               "install it, e.g. `apt-get install chromium`")
        self._profile = tempfile.mkdtemp(prefix="memlib-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Move the child's ends above 10 so that dup2 onto 3 and 4 in the child cannot clobber one another.
        import fcntl
        hi_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def child_pipes() -> None:  # runs in the child between fork and exec
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                "--allow-file-access-from-files", f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=child_pipes)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(hi_r)
            os.close(hi_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        try:
            target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        except BaseException:
            self.close()
            raise

    # -- protocol
    def _read_message(self) -> dict:
        import select

        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_child], [], [], self.timeout)
            if not ready:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium closed the DevTools pipe (exit code {self._proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')} {reply['error'].get('data', '')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def send(self, method: str, params: dict | None = None) -> dict:
        """Send a DevTools command to the page and return its result (events met meanwhile go to ``events``)."""
        return self._send(method, params, self._session)

    def wait_for(self, method: str) -> dict:
        """Block until the page sends the event ``method`` (one already received counts); return it."""
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self.events):
                if event["method"] == method:
                    return self.events.pop(i)
            if time.monotonic() > deadline:
                raise BrowserError(f"no {method} within {self.timeout:.0f} s")
            message = self._read_message()
            if "method" in message:
                self.events.append(message)

    # -- pages
    def open(self, page: Path) -> list[str]:
        """Load the local file ``page`` and wait for its load event (images included) and web fonts.

        Returns the problems the page reported while loading: console errors, uncaught exceptions and failed
        resource loads (e.g. ``net::ERR_FILE_NOT_FOUND`` for a broken relative link to an image)."""
        self.events.clear()
        result = self.send("Page.navigate", {"url": Path(page).resolve().as_uri()})
        if result.get("errorText"):
            raise BrowserError(f"could not open {page}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")
        self.evaluate("document.fonts.ready.then(() => true)")
        return self.problems()

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads among the events received so far."""
        out = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                   for a in params.get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.append("exception: " + str(details.get("exception", {}).get("description") or details.get("text")))
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"log: {entry.get('text')} {entry.get('url', '')}".rstrip())
        return out

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since it was opened (documents, style sheets, images, scripts …)."""
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw {result['exceptionDetails'].get('text')}: "
                               f"{result['exceptionDetails'].get('exception', {}).get('description')}")
        return result.get("result", {}).get("value")

    def screenshot(self, png: Path, full_page: bool = True, max_height: int = 16384) -> Path:
        """Write a PNG of the open page: the whole page (up to ``max_height`` px) or just the viewport."""
        height = self.height
        if full_page:
            height = min(max_height, max(self.height, int(self.evaluate(
                "Math.ceil(document.documentElement.scrollHeight)"))))
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        png = Path(png)
        png.parent.mkdir(parents=True, exist_ok=True)
        tmp = png.with_name(f".{png.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "xb") as fh:
            fh.write(base64.b64decode(data))
        os.replace(tmp, png)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        return png

    # -- lifetime
    def close(self) -> None:
        """Ask Chromium to quit, kill it if it does not within 10 s, and remove its temporary profile."""
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.write(self._to_child, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        for fd in (getattr(self, "_to_child", None), getattr(self, "_from_child", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_child = self._from_child = None
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> HeadlessChromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def screenshot(html: Path, png: Path, width: int = 1280, height: int | None = None) -> Path:
    """PNG of the local page ``html`` as headless Chromium shows it ``width`` px wide, and return ``png``.

    ``height=None`` captures the whole page; a number captures only the top ``height`` px (the first screen)."""
    with HeadlessChromium(width=width, height=height or 900) as browser:
        browser.open(html)
        return browser.screenshot(png, full_page=height is None)
