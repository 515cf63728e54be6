"""Caching proxies in front of a live server: nginx and Varnish, from their Debian packages, each on
a free 127.0.0.1 port with a folder of its own, running the recipes of docs/cdn/.

    with NginxProxy(origin=f"127.0.0.1:{live.port}", workdir=tmp_path / "nginx") as edge:
        httpx.get(f"{edge.url}/thumb/320x/a.jpg")
    with VarnishProxy(origin=..., workdir=...) as edge: ...

`template=` runs another config (a naive one, say) with the same placeholders.

Failures are told apart, so that tests can skip for the first and fail for the second:

* `ProxyUnavailable`: the binary is not installed, or the proxy would not start here for a reason
  that is not its configuration (no C compiler for Varnish, no free port, ...);
* `ProxyConfigError`: the proxy's own checker (`nginx -t`, `varnishd -C`) rejects the recipe,
  which is a bug in docs/cdn/.

Both proxies run in the foreground in a process group of their own, so that stopping them (SIGTERM
to the group, SIGKILL after 10 s) takes their workers and children with them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.live import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cdn"
NGINX_CONF = DOCS / "nginx.conf"
VARNISH_VCL = DOCS / "varnish.vcl"

START_TIMEOUT_S = 60.0  # Varnish compiles its VCL with cc first: a few seconds on a busy machine
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 3

INSTALL_HINT = "Debian: apt-get install nginx-light varnish; .ci/run installs them"


class ProxyUnavailable(RuntimeError):
    """The proxy cannot run here (not installed, or it would not start): tests skip."""


class ProxyConfigError(RuntimeError):
    """The proxy's own checker rejects the recipe: a bug in docs/cdn/, tests fail."""


def find_binary(name: str) -> str | None:
    """`name` on PATH, or in the sbin folders a non-root PATH often lacks."""
    found = shutil.which(name)
    if found:
        return found
    for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None




def render(template: str, values: dict[str, str]) -> str:
    """`template` with every `__NAME__` replaced; a placeholder left over is a bug in the recipe."""
    for name, value in values.items():
        template = template.replace(f"__{name}__", value)
    left = sorted(set(re.findall(r"__[A-Z][A-Z_]*__", template)))
    if left:
        raise ProxyConfigError(f"placeholders not substituted: {', '.join(left)}")
    return template


def answers_http(port: int, timeout_s: float = 1.0) -> bool:
    """Whether something on 127.0.0.1:`port` answers a GET with an HTTP status line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


class _Proxy:
    """One proxy process: `start()` (or `with`) returns once it answers HTTP on `port`."""

    name = "proxy"
    binary_name = ""

    def __init__(self, *, origin: str, workdir: Path, template: Path | None = None) -> None:
        """`origin`: the origin's host:port (127.0.0.1:PORT)."""
        self.origin = origin
        self.workdir = Path(workdir)
        self.template = template
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.output = self.workdir / f"{self.name}.out"  # the process's own stdout and stderr

    @property
    def url(self) -> str:
        assert self.port is not None, "start() first"
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what each proxy defines ---

    def prepare(self, port: int) -> list[str]:
        """Write the configuration for `port` and return the command that runs the proxy."""
        raise NotImplementedError

    def check(self) -> None:
        """Run the proxy's own configuration checker (after `prepare`)."""

    def log_text(self) -> str:
        return _tail(self.output, 40)

    # --- shared ---

    def binary(self) -> str:
        found = find_binary(self.binary_name)
        if found is None:
            raise ProxyUnavailable(f"{self.binary_name} is not installed ({INSTALL_HINT})")
        return found

    def start(self) -> None:
        assert self.process is None, "already running"
        self.binary()  # ProxyUnavailable before anything is written
        self.workdir.mkdir(parents=True, exist_ok=True)
        last = ""
        for _ in range(PORT_ATTEMPTS):
            port = free_port()
            command = self.prepare(port)
            self.check()
            with open(self.output, "ab") as output:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                           stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True)
            self.process, self.port = process, port
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline and process.poll() is None:
                if answers_http(port):
                    return
                time.sleep(0.1)
            last = self.log_text()
            self.stop()
            if "Address already in use" not in last:
                break  # not a port race: another port would not help
        raise ProxyUnavailable(f"{self.name} did not start on 127.0.0.1 within {START_TIMEOUT_S:.0f} s: {last}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        group = process.pid  # start_new_session: the group's id is the leader's pid
        if process.poll() is None:
            _signal_group(group, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                _signal_group(group, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_S)
        # Workers or a child the leader left behind (it exited, they did not).
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _group_alive(group) and time.monotonic() < deadline:
            _signal_group(group, signal.SIGKILL)
            time.sleep(0.05)


def _signal_group(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class NginxProxy(_Proxy):
    """nginx with docs/cdn/nginx.conf: placeholders LISTEN, ORIGIN, CACHE_DIR, TEMP_DIR, LOG_DIR."""

    name = "nginx"
    binary_name = "nginx"

    def __init__(self, *, origin: str, workdir: Path, template: Path | None = None) -> None:
        super().__init__(origin=origin, workdir=workdir, template=template or NGINX_CONF)
        self.conf = self.workdir / "nginx.conf"
        self.logs = self.workdir / "logs"
        self._args: list[str] = []

    def prepare(self, port: int) -> list[str]:
        cache, temp = self.workdir / "cache", self.workdir / "temp"
        for folder in (cache, temp, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        assert self.template is not None
        self.conf.write_text(render(self.template.read_text(), {
            "LISTEN": f"127.0.0.1:{port}",
            "ORIGIN": self.origin,
            "CACHE_DIR": str(cache),
            "TEMP_DIR": str(temp),
            "LOG_DIR": str(self.logs),
        }))
        globals_ = f"daemon off; master_process on; pid {self.workdir / 'nginx.pid'};"
        if os.geteuid() == 0:
            # Workers would otherwise run as nobody, who cannot enter pytest's 0700 tmp folders.
            globals_ += " user root;"
        self._args = ["-p", f"{self.workdir}/", "-e", str(self.logs / "startup.log"), "-c", str(self.conf),
                      "-g", globals_]
        return [self.binary(), *self._args]

    def check(self) -> None:
        result = subprocess.run([self.binary(), "-t", *self._args], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return
        message = (result.stderr or result.stdout).strip()
        if f"in {self.conf}:" in message:  # nginx names the file and line of a configuration error
            raise ProxyConfigError(f"nginx -t rejects {self.template}: {message}")
        raise ProxyUnavailable(f"nginx -t fails here: {message}")

    def log_text(self) -> str:
        return " | ".join(part for part in (_tail(self.output), _tail(self.logs / "error.log"),
                                            _tail(self.logs / "startup.log")) if part != "(no log)")

    def access_log(self) -> str:
        path = self.logs / "access.log"
        return path.read_text(errors="replace") if path.exists() else ""


class VarnishProxy(_Proxy):
    """varnishd with docs/cdn/varnish.vcl: placeholders ORIGIN_HOST, ORIGIN_PORT.

    `-j none`: no privilege separation, so that it runs the same as root or not, and a root run
    needs no varnish/vcache user able to enter pytest's 0700 tmp folders. `-T none`: no management
    port (nothing here uses varnishadm). `-n`: a working folder of its own (shared memory log, the
    compiled VCL).
    """

    name = "varnish"
    binary_name = "varnishd"

    def __init__(self, *, origin: str, workdir: Path, template: Path | None = None,
                 storage: str = "malloc,64m") -> None:
        super().__init__(origin=origin, workdir=workdir, template=template or VARNISH_VCL)
        self.vcl = self.workdir / "thumbserver.vcl"
        self.instance = self.workdir / "instance"
        self.storage = storage

    def prepare(self, port: int) -> list[str]:
        host, _, origin_port = self.origin.rpartition(":")
        assert self.template is not None
        self.vcl.write_text(render(self.template.read_text(), {"ORIGIN_HOST": host, "ORIGIN_PORT": origin_port}))
        return [self.binary(), "-F", "-j", "none", "-T", "none", "-a", f"127.0.0.1:{port}",
                "-f", str(self.vcl), "-n", str(self.instance), "-s", self.storage]

    def check(self) -> None:
        result = subprocess.run([self.binary(), "-C", "-j", "none", "-f", str(self.vcl), "-n", str(self.instance)],
                                capture_output=True, text=True, timeout=60)
        if result.returncode == 0:
            return
        # -C prints the generated C on success; on failure the message comes last.
        message = result.stderr.strip()[-2000:]
        if "VCC-compiler" in message:  # the VCL compiler's own complaint, with file, line and column
            raise ProxyConfigError(f"varnishd -C rejects {self.template}: {message}")
        raise ProxyUnavailable(f"varnishd -C fails here: {message}")
