"""Headless Chromium for tests: open a URL or an HTML file, run JavaScript, click, type, read
the DOM, take a screenshot.

    with Browser() as browser:                       # $CHROMIUM, else chromium on PATH
        page = browser.open("http://127.0.0.1:8089/")    # or a Path to an HTML report
        page.wait_for("document.querySelector('form') !== null")
        page.type("input[name=userCount]", "4")
        page.click_text("button", "Start")
        page.screenshot(tmp_path / "ui.png")
        html = page.dom()

It speaks the DevTools protocol over a pipe (``--remote-debugging-pipe``: JSON messages
ending in a NUL byte, commands on the browser's fd 3, replies and events on its fd 4), so it
needs no driver package, no websocket and no port. Chromium runs in its own session with a
fresh profile; leaving the ``with`` block kills every process of that session, whatever
happened inside it.
"""

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1280,1024",
]  # fmt: skip


class BrowserError(RuntimeError):
    """Chromium failed, a command returned an error, or JavaScript threw."""


def find_chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _use_as_devtools_pipe(commands: int, replies: int):
    def setup() -> None:  # in the child, before exec
        # Moved above 4 first, so that placing one cannot overwrite the other.
        commands_high = fcntl.fcntl(commands, fcntl.F_DUPFD, 5)
        replies_high = fcntl.fcntl(replies, fcntl.F_DUPFD, 5)
        os.dup2(commands_high, 3)
        os.dup2(replies_high, 4)

    return setup


class Browser:
    def __init__(self, executable: str | None = None, timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no chromium found (set $CHROMIUM)")
        self.timeout = timeout  # for each command and each wait
        self._next_id = 0
        self._buffer = b""

    def __enter__(self) -> "Browser":
        self._dir = Path(tempfile.mkdtemp(prefix="test-chromium-"))
        self.log_path = self._dir / "chromium.log"
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        try:
            with open(self.log_path, "wb") as log:
                self.process = subprocess.Popen(
                    [self.executable, *FLAGS, f"--user-data-dir={self._dir / 'profile'}",
                     "--remote-debugging-pipe", "about:blank"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=False,
                    preexec_fn=_use_as_devtools_pipe(commands_read, replies_write), start_new_session=True,
                )  # fmt: skip
        except BaseException:
            self._close_pipes()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        finally:
            os.close(commands_read)
            os.close(replies_write)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass  # killed below either way
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:  # the renderers and helpers too: the whole session Chromium leads
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self._close_pipes()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _close_pipes(self) -> None:
        for fd in (self._commands, self._replies):
            os.close(fd)

    def open(self, target: str | Path) -> "Page":
        """A new tab on a URL or a local file, once its document has loaded."""
        url = Path(target).resolve().as_uri() if isinstance(target, Path) else target
        target_id = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True})["sessionId"]
        page = Page(self, session)
        navigation = page.send("Page.navigate", {"url": url})
        if navigation.get("errorText"):
            raise BrowserError(f"{url}: {navigation['errorText']}")
        page.wait_for("document.readyState === 'complete'")
        return page

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """One DevTools command; returns its result (events in between are skipped)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._commands, data):]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._read_message(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply["result"]

    def _read_message(self, deadline: float, waiting_for: str) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise BrowserError(f"{waiting_for}: no reply from chromium in time")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise BrowserError(f"{waiting_for}: chromium exited; log:\n{self.log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Page:
    """One tab. Selectors are CSS; JavaScript expressions are evaluated in the page."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, session=self.session)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (promises awaited), as JSON gives it."""
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True})
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            raise BrowserError(f"{expression!r}: {details.get('exception', {}).get('description') or details['text']}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, poll: float = 0.2):
        """Evaluate until the (JSON) value is truthy and return it; BrowserError after the timeout."""
        deadline = time.monotonic() + (timeout or self.browser.timeout)
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout or self.browser.timeout} s: {expression}")
            time.sleep(poll)
        return value

    def _center(self, element_js: str) -> tuple[float, float]:
        """The element's middle once it stays put over two frames (not mid-animation)."""
        box = self.evaluate(f"""(async () => {{
            const element = {element_js};
            if (!element) return null;
            const frame = () => new Promise(resolve => requestAnimationFrame(resolve));
            let before = null;
            for (let i = 0; i < 100; i++) {{
                element.scrollIntoView({{block: "center"}});
                const r = element.getBoundingClientRect();
                const now = [r.x + r.width / 2, r.y + r.height / 2];
                if (before && now[0] === before[0] && now[1] === before[1]) return now;
                before = now;
                await frame(); await frame();
            }}
            return "moving";
        }})()""")
        if box is None or box == "moving":
            raise BrowserError(f"no element to click, or it keeps moving: {element_js}")
        return box[0], box[1]

    def _click_at(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        self._click_at(*self._center(f"document.querySelector({json.dumps(selector)})"))

    def click_text(self, selector: str, text: str) -> None:
        """Click the first element matching ``selector`` whose visible text is ``text``."""
        self._click_at(*self._center(
            f"[...document.querySelectorAll({json.dumps(selector)})]"
            f".find(e => (e.innerText || '').trim() === {json.dumps(text)})"))

    def type(self, selector: str, text: str) -> None:
        """Replace the text of an input as a user would: focus, select all, type."""
        self.click(selector)
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        if text:
            self.send("Input.insertText", {"text": text})
        else:
            self.send("Input.dispatchKeyEvent", {"type": "keyDown", "key": "Delete", "code": "Delete",
                                                 "windowsVirtualKeyCode": 46})
            self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": "Delete", "code": "Delete",
                                                 "windowsVirtualKeyCode": 46})

    def select(self, selector: str, value: str) -> None:
        """Choose an option of a native <select>, firing the change event a user's choice fires."""
        if not self.evaluate(f"""(() => {{
            const element = document.querySelector({json.dumps(selector)});
            if (!element || ![...element.options].some(o => o.value === {json.dumps(value)})) return false;
            element.value = {json.dumps(value)};
            element.dispatchEvent(new Event("change", {{bubbles: true}}));
            return true;
        }})()"""):
            raise BrowserError(f"no option {value!r} in {selector}")

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML")

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)
