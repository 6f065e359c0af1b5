"""Load a page in headless Chromium and report what a reader would see.

Speaks the DevTools protocol over a WebSocket written with the standard library (a
handful of frames, one connection, no pip dependency): navigate, collect console errors,
uncaught exceptions and failed loads, measure every image, take a full-page screenshot.
Used by tests/test_report_browser.py and by hand:

    python tests/browser.py reports/example/index.html docs/report-screenshot.png
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Without these Chromium tries to reach Google services and, on a closed network, hangs on them.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
)
_MEASURE = """JSON.stringify([...document.querySelectorAll('img, svg, canvas')].map(e => {
  const r = e.getBoundingClientRect();
  return {tag: e.tagName.toLowerCase(), alt: e.getAttribute('alt') || '', width: r.width, height: r.height,
          natural: e.naturalWidth === undefined ? null : e.naturalWidth, complete: e.complete === undefined ? true : e.complete};
}))"""


class BrowserError(Exception):
    pass


@dataclass
class PageReport:
    errors: list[str] = field(default_factory=list)   # console errors, exceptions, failed loads
    images: list[dict] = field(default_factory=list)  # tag, alt, rendered width/height, natural width
    title: str = ""
    screenshot: bytes = b""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def inspect_page(html: Path, screenshot: Path | None = None, width: int = 1280, timeout: float = 60.0,
                 max_height: int | None = None) -> PageReport:
    """Open `html` (a file), wait for load, and return errors, image sizes and a PNG of the
    whole page (or of its top `max_height` CSS pixels, e.g. for a README picture)."""
    exe = find_chromium()
    if exe is None:
        raise BrowserError("chromium not found (Debian: apt-get install chromium)")
    profile = tempfile.mkdtemp(prefix="perfsuite-chromium-")
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         f"--window-size={width},900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        port = _devtools_port(Path(profile), proc, timeout)
        ws = _CDP(_page_ws_url(port, timeout), timeout)
        try:
            return _drive(ws, Path(html).resolve().as_uri(), width, screenshot, timeout, max_height)
        finally:
            ws.close()
    finally:
        # Only the process we started (and its own children, via its session).
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _drive(ws: "_CDP", url: str, width: int, screenshot: Path | None, timeout: float,
           max_height: int | None) -> PageReport:
    rep = PageReport()
    for domain in ("Page", "Runtime", "Log", "Network"):
        ws.call(f"{domain}.enable")
    ws.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    ws.call("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    loaded = False
    while time.monotonic() < deadline and not loaded:
        ev = ws.next_event(deadline - time.monotonic())
        loaded = _collect(ev, rep) if ev else loaded
    if not loaded:
        raise BrowserError(f"page did not finish loading within {timeout:.0f} s")
    # Late console messages (e.g. from onload handlers) arrive just after the load event.
    settle = time.monotonic() + 0.5
    while (ev := ws.next_event(max(0.0, settle - time.monotonic()))) is not None:
        _collect(ev, rep)
    rep.title = ws.call("Runtime.evaluate", expression="document.title", returnByValue=True)["result"].get("value", "")
    res = ws.call("Runtime.evaluate", expression=_MEASURE, returnByValue=True)
    rep.images = json.loads(res["result"]["value"])
    if screenshot is not None:
        size = ws.call("Page.getLayoutMetrics")["cssContentSize"]
        height = int(min(size["height"], max_height or 16000))  # 16000: Chromium's texture limit
        ws.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        shot = ws.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                       clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1})
        rep.screenshot = base64.b64decode(shot["data"])
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        Path(screenshot).write_bytes(rep.screenshot)
    return rep


def _collect(ev: dict, rep: PageReport) -> bool:
    """Record an error-like event; True on the load event."""
    method, p = ev.get("method"), ev.get("params", {})
    if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        rep.errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
    elif method == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        rep.errors.append("exception: " + str(d.get("exception", {}).get("description") or d.get("text")))
    elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        rep.errors.append(f"log: {e.get('text')} {e.get('url', '')}".strip())
    elif method == "Network.loadingFailed" and not p.get("canceled"):
        rep.errors.append(f"network: {p.get('errorText')} ({p.get('type')})")
    return method == "Page.loadEventFired"


def _devtools_port(profile: Path, proc: subprocess.Popen, timeout: float) -> int:
    # Chromium writes the port it picked (--remote-debugging-port=0) into the profile.
    f = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrowserError(f"chromium exited with status {proc.returncode} before opening DevTools")
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            time.sleep(0.05)
    raise BrowserError("chromium did not open its DevTools port in time")


def _page_ws_url(port: int, timeout: float) -> str:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        if pages:
            return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.05)
    raise BrowserError("chromium has no page target")


class _CDP:
    """The least WebSocket (RFC 6455) client that DevTools needs: masked text frames out,
    unmasked (possibly fragmented) frames in, pings answered."""

    def __init__(self, url: str, timeout: float):
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BrowserError("DevTools closed the connection during the handshake")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        self.buf = bytearray(rest)  # the first frames may arrive with the handshake
        self.partial = bytearray()
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise BrowserError("DevTools refused the WebSocket: " + head.split(b"\r\n", 1)[0].decode("latin-1"))
        self.timeout = timeout
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        mid = self.next_id
        self._send(json.dumps({"id": mid, "method": method, "params": params}).encode())
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._recv(deadline - time.monotonic())
            if msg is None:
                raise BrowserError(f"no answer to {method}")
            if msg.get("id") == mid:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def next_event(self, timeout: float) -> dict | None:
        if self.events:
            return self.events.pop(0)
        return self._recv(timeout)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, payload: bytes, opcode: int = 1) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _recv(self, timeout: float) -> dict | None:
        """Next message, or None after `timeout`. Bytes are buffered and a frame is only taken
        off the buffer when complete, so a timeout in the middle of a frame loses nothing."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._take_frame()
            if frame is not None:
                fin, opcode, payload = frame
                if opcode == 9:  # ping
                    self._send(payload, 10)
                elif opcode == 8:
                    raise BrowserError("DevTools closed the connection")
                elif opcode in (0, 1, 2):
                    self.partial += payload
                    if fin:
                        data, self.partial = bytes(self.partial), bytearray()
                        return json.loads(data)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                return None
            if not chunk:
                raise BrowserError("DevTools connection closed")
            self.buf += chunk

    def _take_frame(self) -> tuple[bool, int, bytes] | None:
        b = self.buf
        if len(b) < 2:
            return None
        n, pos = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, pos = struct.unpack(">H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, pos = struct.unpack(">Q", b[2:10])[0], 10
        mask = None
        if b[1] & 0x80:
            mask, pos = bytes(b[pos:pos + 4]), pos + 4
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        if mask:
            payload = bytes(x ^ mask[i % 4] for i, x in enumerate(payload))
        fin, opcode = bool(b[0] & 0x80), b[0] & 0x0F
        del b[:pos + n]
        return fin, opcode, payload


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python tests/browser.py PAGE.html SCREENSHOT.png [MAX_HEIGHT]")
    r = inspect_page(Path(sys.argv[1]), Path(sys.argv[2]), max_height=int(sys.argv[3]) if len(sys.argv) == 4 else None)
    print(f"title: {r.title}\nerrors: {r.errors or 'none'}")
    for im in r.images:
        print(f"  {im['tag']} {im['width']:.0f}x{im['height']:.0f}  {im['alt'][:60]}")
