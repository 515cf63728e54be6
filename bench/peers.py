"""Everything measured: our server and its peers, each able to install and run itself.

HTTP subjects (:class:`OurServer`, :class:`Thumbor`, :class:`Nginx`, :class:`StarletteCeiling`)
start a fresh process per scenario with :meth:`serving` and say with :meth:`target` which
requests that scenario sends them. In-process subjects (:class:`InProcess`: Pillow alone,
pyvips) render thumbnails with no HTTP through ``render_loop.py`` in their own interpreter.

``install`` raises :class:`tools.Unavailable` when a subject cannot be set up; ``serving``
raises :class:`process.StartFailed` and ``target`` :class:`TargetBroken` when it does not
behave. The caller turns each into one ``skip:`` line.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import tools
from corpus import LINK_PATTERN, Corpus
from load import Probe, Target, probe
from PIL import Image
from process import StartFailed, free_port, redis_server, service
from render_loop import UNBOUNDED, contain
from scenarios import DEFAULT_CACHE_BYTES, SRCSET, SRCSET_WIDTHS, Scenario, Timing

BENCH_DIR = Path(__file__).resolve().parent
RENDER_NICE = 10  # server.thumbnails.pool.RenderPool's default `nice`
REPO = BENCH_DIR.parent
HIT_SPEC = "320x"
# Hits and revalidations are measured with CORS and signed URLs on (issue 14: "with metrics,
# CORS and signing on"), as a CDN's origin would run; metrics are on by default. A fixed
# key and salt: the bench's own, signing nothing anyone serves.
SECURED_SETTINGS = {
    "http": {"cors_origins": ["*"]},
    "security": {"keys": ["62656e63682d6b6579"], "salts": ["62656e63682d73616c74"]},
}


class TargetBroken(Exception):
    """A subject answered a scenario's probe request with the wrong status."""


class TierUnavailable(Exception):
    """A row's shared tier (its Redis) could not be set up; the subject itself is fine."""


@dataclass(frozen=True)
class Environment:
    """What every subject may rely on during a run."""

    nproc: int
    corpus: Corpus
    workdir: Path  # scratch space: configs, logs, result storage
    static_dir: Path  # thumb.jpg and original.jpg, for the static peers
    venvs: Path
    workers: int  # uvicorn worker processes for our server and the Starlette ceiling
    timing: Timing
    baseline: Path | None = None  # another checkout of this server, measured beside ours

    def names(self, scenario: Scenario) -> int:
        """How many distinct names the cold ``scenario``'s source folder holds."""
        return self.corpus.names_24mp if scenario.source == "24mp" else self.corpus.names_2mp


@dataclass(frozen=True)
class Running:
    """A subject ready for load: where to send it and whose process tree to watch."""

    base_url: str
    pid: int
    log: Path | None = None  # our server's log: one line per render


class HttpSubject:
    """A server measured with wrk. Subclasses set ``name`` and ``label`` and fill the hooks."""

    name = ""
    label = ""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def install(self, debian: tools.Debian) -> None:
        """Make the subject runnable or raise :class:`tools.Unavailable`."""

    def version(self) -> str:
        raise NotImplementedError

    def serving(self, scenario: Scenario):
        """Context manager: a fresh process configured for ``scenario``, yielding :class:`Running`."""
        raise NotImplementedError

    def target(self, scenario: Scenario, base_url: str) -> Target:
        """The requests ``scenario`` sends this subject (cold: the whole range of names)."""
        raise NotImplementedError

    def _log(self, scenario: Scenario) -> Path:
        return self.env.workdir / f"{self.name}-{scenario.key}.log"


class OurServer(HttpSubject):
    """``python -m server serve``: the server this harness exists for.

    Every process it starts keeps its shared disk tier in the run's scratch folder (a fresh
    folder per row unless a row asks for the same one twice, as ``restart`` does), and every
    Redis it uses is one the harness started on 127.0.0.1 for that row.
    """

    name, label = "ours", "thumbserver (ours)"
    hit_path = f"/thumb/{HIT_SPEC}/hit.jpg"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        self._signed: dict[str, str] = {}  # base URL -> the hit path signed for that server

    def install(self, debian: tools.Debian) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--help"],
            cwd=REPO, capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise tools.Unavailable(f"`python -m server serve` does not run: {_tail(done.stderr)}")

    def version(self) -> str:
        done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
        return f"git {done.stdout.strip() or '?'}, {self.env.workers} worker(s), " \
               f"render_workers {self.env.nproc}"

    def cache_bytes(self, scenario: Scenario) -> int:
        """cache.max_bytes used for ``scenario``: the default unless the scenario sets one."""
        return scenario.memory_bytes or DEFAULT_CACHE_BYTES

    checkout = REPO

    @contextmanager
    def serving(self, scenario: Scenario) -> Iterator[Running]:
        with ExitStack() as stack:
            redis_url = None
            if scenario.shared == "redis":
                redis_url = stack.enter_context(self.redis(f"{self.name}-{scenario.key}"))
            yield stack.enter_context(self.node(scenario, tag=scenario.key, shared=scenario.shared,
                                                redis_url=redis_url))

    @contextmanager
    def redis(self, tag: str) -> Iterator[str]:
        """A redis-server of the run's own for one row: its URL. Raises :class:`TierUnavailable`."""
        with ExitStack() as stack:
            try:
                url = stack.enter_context(redis_server(self.env.workdir / f"redis-{tag}"))
            except StartFailed as error:  # only the Redis's own start: not the block's
                raise TierUnavailable(f"redis-server did not start: {error}") from error
            yield url

    @contextmanager
    def node(self, scenario: Scenario, *, tag: str, shared: str = "disk", workers: int | None = None,
             redis_url: str | None = None, disk_path: Path | None = None) -> Iterator[Running]:
        """One server for ``scenario``: ``tag`` names its config and log; the shared disk tier is
        ``disk_path`` (default: a fresh folder per tag), ``workers`` None means ``--workers``."""
        config = self.env.workdir / f"{self.name}-{tag}.yaml"
        secured = scenario.request in ("hit", "revalidation")
        config.write_text(json.dumps({  # JSON is YAML
            "storage": {"root": str(self.env.corpus.root)},
            "cache": {"max_bytes": self.cache_bytes(scenario)},
            "thumbnails": {"auto_formats": []},
            "limits": {"render_workers": self.env.nproc},
            **(SECURED_SETTINGS if secured else {}),
        }, indent=2))
        port = free_port()
        command = [sys.executable, "-m", "server", "serve", "--config", str(config),
                   "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers or self.env.workers)]
        # THUMBSERVER_* variables would override the config: the run must be reproducible.
        env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBSERVER_")}
        # The default disk folder is $XDG_CACHE_HOME/thumbserver: inside the scratch folder too,
        # for a checkout (the baseline) that is not told where to keep its tier.
        env["XDG_CACHE_HOME"] = str(self.env.workdir / f"xdg-{self.name}-{tag}")
        env.update(self.environment(
            shared=shared, redis_url=redis_url,
            disk_path=disk_path or self.env.workdir / f"results-{self.name}-{tag}"))
        base = f"http://127.0.0.1:{port}"
        log = self.env.workdir / f"{self.name}-{tag}.log"
        # `python -m` puts the working directory first on sys.path: the checkout's own packages.
        if secured:
            self._signed[base] = self._sign(config, env, self.hit_path)
        with service(command, ready_url=f"{base}/healthz", log=log, env=env,
                     cwd=self.checkout) as child:
            yield Running(base, child.pid, log)

    def hit_path_at(self, base_url: str) -> str:
        """The hit thumbnail's path at the server of `base_url`: signed when it signs."""
        return self._signed.get(base_url, self.hit_path)

    def _sign(self, config: Path, env: dict[str, str], path: str) -> str:
        """`path` signed by this checkout's own `sign` command, with the row's config."""
        done = subprocess.run([sys.executable, "-m", "server", "sign", "--config", str(config), path],
                              cwd=self.checkout, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise StartFailed(f"`python -m server sign` failed: {_tail(done.stderr)}")
        return done.stdout.strip()

    def environment(self, *, shared: str, redis_url: str | None, disk_path: Path) -> dict[str, str]:
        """Settings only this checkout knows: the shared tier, its disk folder, its Redis, and the
        machine's intermediates beside that folder (a fresh one with it: a cold row must not cut
        from what an earlier run decoded)."""
        env = {"THUMBSERVER_CACHE_SHARED": shared, "THUMBSERVER_CACHE_DISK_PATH": str(disk_path),
               "THUMBSERVER_LIMITS_HOST_INTERMEDIATE_PATH": f"{disk_path}-intermediates"}
        if redis_url:
            env["THUMBSERVER_CACHE_REDIS_URL"] = redis_url
        return env

    def target(self, scenario: Scenario, base_url: str) -> Target:
        if scenario.family:
            return _family(scenario, self.env, base_url)
        if scenario.cold:
            return _distinct(scenario, self.env, base_url, f"/thumb/{_spec(scenario.box)}")
        hit_path = self.hit_path_at(base_url)
        if scenario.request == "hit":
            _expect(base_url + hit_path, 200)  # renders it: the shared tier is warm after
            return Target(path=hit_path)
        if scenario.request == "revalidation":
            return _revalidating(base_url, hit_path)
        if scenario.request == "original":
            return _static(base_url, "/original.jpg")
        raise KeyError(scenario.key)

    def thumbnail_paths(self, scenario: Scenario, count: int) -> list[str]:
        """``count`` distinct thumbnails of a render-count scenario: its box over the first
        names of its source (identical work each)."""
        prefix = f"/thumb/{_spec(scenario.box)}/{scenario.source}/"
        return [prefix + LINK_PATTERN % n for n in range(count)]

    @staticmethod
    def stats(base_url: str) -> dict:
        """The server's counters from /metrics (every worker summed), in the shape the report
        reads: {"cache": {"hits"}, "shared": {"hits", "kind"}, "intermediates": {...}}; empty if
        unreadable."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = probe(base_url + "/metrics").body.decode()
            found = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                     for family in text_string_to_metric_families(text) for sample in family.samples}
        except (OSError, ValueError):
            return {}

        def count(name: str, **labels: str) -> int:
            return int(found.get((name, tuple(sorted(labels.items()))), 0))

        return {
            "cache": {"hits": count("thumbserver_cache_lookups_total", tier="memory", result="hit")},
            "shared": {"hits": count("thumbserver_cache_lookups_total", tier="shared", result="hit"), "kind": "shared"},
            "intermediates": {result: count("thumbserver_intermediates_total", result=result)
                              for result in ("decoded", "reused")},
        }


class Thumbor(HttpSubject):
    """thumbor with its file loader and the PIL engine, one process, a thread per core."""

    name, label = "thumbor", "thumbor"

    @property
    def _venv(self) -> Path:
        return self.env.venvs / "thumbor"

    def install(self, debian: tools.Debian) -> None:
        tools.ensure_venv(self._venv, ["thumbor>=7.7,<8"],
                          "import thumbor.server, thumbor.loaders.file_loader")

    def version(self) -> str:
        return tools.version_of([str(self._venv / "bin" / "thumbor"), "--version"])

    @contextmanager
    def serving(self, scenario: Scenario) -> Iterator[Running]:
        config = self.env.workdir / f"thumbor-{scenario.key}.conf"
        config.write_text(self._config(result_storage=scenario.request == "hit"))
        port = free_port()
        command = [str(self._venv / "bin" / "thumbor"), "-i", "127.0.0.1", "-p", str(port),
                   "-c", str(config), "-l", "warning"]
        base = f"http://127.0.0.1:{port}"
        with service(command, ready_url=f"{base}/healthcheck", log=self._log(scenario)) as child:
            yield Running(base, child.pid)

    def _config(self, *, result_storage: bool) -> str:
        """thumbor.conf: originals from the corpus, no original storage, result storage on hit."""
        results = self.env.workdir / "thumbor-results"
        lines = {
            "LOADER": "thumbor.loaders.file_loader",
            "FILE_LOADER_ROOT_PATH": str(self.env.corpus.root),
            "STORAGE": "thumbor.storages.no_storage",
            "RESULT_STORAGE": "thumbor.result_storages.file_storage" if result_storage else None,
            "RESULT_STORAGE_FILE_STORAGE_ROOT_PATH": str(results),
            "RESULT_STORAGE_STORES_UNSAFE": True,
            "ENGINE_THREADPOOL_SIZE": self.env.nproc,
            "QUALITY": 82,
            "ALLOW_UNSAFE_URL": True,
        }
        return "".join(f"{key} = {value!r}\n" for key, value in lines.items())

    def target(self, scenario: Scenario, base_url: str) -> Target:
        if scenario.cold:
            return _distinct(scenario, self.env, base_url, f"/unsafe/{_thumbor_box(scenario.box)}")
        if scenario.request == "hit":
            path = f"/unsafe/{_thumbor_box((320, None))}/hit.jpg"
            _expect(base_url + path, 200)
            return Target(path=path)
        raise KeyError(scenario.key)


class Nginx(HttpSubject):
    """nginx serving the static folder: the ceiling for bytes off a file."""

    name, label = "nginx", "nginx (static)"

    def install(self, debian: tools.Debian) -> None:
        if _nginx_binary() is None:
            debian.ensure("nginx-light")
        if _nginx_binary() is None:
            raise tools.Unavailable("no nginx binary after installing nginx-light")

    def version(self) -> str:
        return tools.version_of([_nginx_binary() or "nginx", "-v"]).removeprefix("nginx version: ")

    @contextmanager
    def serving(self, scenario: Scenario) -> Iterator[Running]:
        prefix = self.env.workdir / f"nginx-{scenario.key}"
        prefix.mkdir(exist_ok=True)
        port = free_port()
        config = prefix / "nginx.conf"
        config.write_text(self._config(prefix, port))
        command = [_nginx_binary(), "-p", str(prefix), "-c", str(config),
                   "-e", str(prefix / "error.log")]
        base = f"http://127.0.0.1:{port}"
        with service(command, ready_url=f"{base}/healthz", log=self._log(scenario)) as child:
            yield Running(base, child.pid)

    def _config(self, prefix: Path, port: int) -> str:
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(f"    {kind}_temp_path {prefix / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""\
{user}
worker_processes {self.env.nproc};
daemon off;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types {{ image/jpeg jpg; }}
    default_type application/octet-stream;
{temp}
    server {{
        listen 127.0.0.1:{port};
        root {self.env.static_dir};
        location = /healthz {{ return 200 "ok"; }}
    }}
}}
"""

    def target(self, scenario: Scenario, base_url: str) -> Target:
        return _static_target(scenario, base_url)


class StarletteCeiling(HttpSubject):
    """``ceiling_app.py`` under uvicorn, as many workers as our server: the framework ceiling."""

    name, label = "starlette", "bare Starlette"
    app = "app"

    def install(self, debian: tools.Debian) -> None:
        done = subprocess.run([sys.executable, "-c", "import starlette, uvicorn"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise tools.Unavailable(f"starlette or uvicorn missing: {_tail(done.stderr)}")

    def version(self) -> str:
        code = ("import starlette, uvicorn; "
                "print(f'starlette {starlette.__version__}, uvicorn {uvicorn.__version__}')")
        return tools.version_of([sys.executable, "-c", code]) + f", {self.env.workers} worker(s)"

    @contextmanager
    def serving(self, scenario: Scenario) -> Iterator[Running]:
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", f"ceiling_app:{self.app}", "--app-dir", str(BENCH_DIR),
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.env.workers),
                   "--no-access-log", "--no-server-header", "--log-level", "warning"]
        env = dict(os.environ, BENCH_STATIC_DIR=str(self.env.static_dir))
        base = f"http://127.0.0.1:{port}"
        with service(command, ready_url=f"{base}/healthz", log=self._log(scenario), env=env) as child:
            yield Running(base, child.pid)

    def target(self, scenario: Scenario, base_url: str) -> Target:
        return _static_target(scenario, base_url)


class RawAsgiCeiling(StarletteCeiling):
    """``ceiling_app:raw`` under uvicorn: no framework, our hit's bytes and headers from memory."""

    name, label = "asgi", "raw ASGI app"
    app = "raw"


@dataclass(frozen=True)
class Rendered:
    """What ``render_loop.py`` measured: images, seconds, per-image percentiles, peak RSS."""

    images: int
    seconds: float
    p50_ms: float
    p99_ms: float
    peak_rss: int
    reused_names: int
    sizes: list[list[int]]
    version: str
    cpu_seconds: float = 0.0


class InProcess:
    """A renderer measured in process on ``nproc`` threads, no HTTP (Pillow or pyvips)."""

    def __init__(self, env: Environment, engine: str) -> None:
        self.env = env
        self.engine = engine
        self.name = engine
        self.label = {"pillow": "Pillow alone (floor)", "pyvips": "pyvips/libvips"}[engine]
        self._python = Path(sys.executable)
        self._version = "?"

    def install(self, debian: tools.Debian) -> None:
        if self.engine == "pyvips":
            debian.ensure("libvips42")
            self._python = tools.ensure_venv(
                self.env.venvs / "pyvips", ["pyvips>=2.2,<4"],
                "import pyvips; pyvips.Image.black(1, 1)")

    def version(self) -> str:
        return self._version

    def render(self, scenario: Scenario) -> Rendered:
        """Render ``scenario``'s cold thumbnails for the scenario's duration; raise on failure."""
        width, height = scenario.box
        command = [
            str(self._python), str(BENCH_DIR / "render_loop.py"), "--engine", self.engine,
            *(["--srcset", *SRCSET] if scenario.family else []),
            # Our renders run at nice 10 (RenderPool's default, so the event loop wins the CPU):
            # the floor runs at the same priority, so that other load on the machine weighs on
            # both alike (on an idle machine it changes nothing).
            "--nice", str(RENDER_NICE),
            "--dir", str(self.env.corpus.root / scenario.source), "--pattern", LINK_PATTERN,
            "--count", str(self.env.names(scenario)), "--width", str(width),
            "--threads", str(self.env.nproc), "--seconds", str(scenario.seconds(self.env.timing)),
            "--warmup", str(self.env.timing.warmup),
            *(["--height", str(height)] if height else []),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired as error:
            raise TargetBroken("render_loop did not finish in 600 s") from error
        if done.returncode != 0:
            raise TargetBroken(f"render_loop failed: {_tail(done.stderr)}")
        result = Rendered(**json.loads(done.stdout.strip().splitlines()[-1]))
        self._version = result.version
        if scenario.family:
            if sorted({width for width, _ in result.sizes}) != list(SRCSET_WIDTHS):
                raise TargetBroken(f"the srcset renders {sorted(result.sizes)}")
            return result
        for size in result.sizes:
            _check_size(size, scenario, self.env)
        return result


class Baseline(OurServer):
    """Another checkout of this server (``--baseline DIR``, e.g. main before a change), run with
    the same interpreter and settings: a change's cost or gain as a ratio from one run."""

    name = "baseline"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        assert env.baseline is not None
        self.checkout = env.baseline.resolve()
        self.label = f"thumbserver (baseline {self._commit()})"

    def _commit(self) -> str:
        done = subprocess.run(["git", "-C", str(self.checkout), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
        return done.stdout.strip() or self.checkout.name

    def environment(self, *, shared: str, redis_url: str | None, disk_path: Path) -> dict[str, str]:
        # An older checkout may not know today's keys (its config refuses unknown ones); its
        # disk tier, if it has one, lands under $XDG_CACHE_HOME in the scratch folder.
        return {}

    def install(self, debian: tools.Debian) -> None:
        if not (self.checkout / "server").is_dir():
            raise tools.Unavailable(f"{self.checkout} is not a checkout of this server")

    def version(self) -> str:
        return f"git {self._commit()} at {self.checkout}, {self.env.workers} worker(s)"


def build_subjects(env: Environment) -> dict[str, HttpSubject | InProcess]:
    """Every subject by name, not yet installed."""
    subjects: list[HttpSubject | InProcess] = [
        OurServer(env), InProcess(env, "pillow"), InProcess(env, "pyvips"),
        Thumbor(env), Nginx(env), StarletteCeiling(env), RawAsgiCeiling(env),
    ]
    if env.baseline is not None:
        subjects.insert(1, Baseline(env))
    return {subject.name: subject for subject in subjects}


def _spec(box: tuple[int, int | None]) -> str:
    width, height = box
    return f"{width}x{height or ''}"


def _thumbor_box(box: tuple[int, int | None]) -> str:
    """thumbor's path segment for a contain box: ``320x0`` for a free height, else ``fit-in/WxH``."""
    width, height = box
    return f"fit-in/{width}x{height}" if height else f"{width}x0"


def _distinct(scenario: Scenario, env: Environment, base_url: str, prefix: str) -> Target:
    """A cold target over every name of the scenario's source, checked to render at the size
    the scenario asks for (so every subject does the same work)."""
    target = Target(pattern=f"{prefix}/{scenario.source}/{LINK_PATTERN}", first=0,
                    count=env.names(scenario))
    answer = _expect(base_url + target.pattern % 0, 200)
    try:
        size = Image.open(io.BytesIO(answer.body)).size
    except OSError as error:
        raise TargetBroken(f"{target.pattern % 0} is not an image: {error}") from error
    _check_size(size, scenario, env)
    return target


def _family(scenario: Scenario, env: Environment, base_url: str) -> Target:
    """The srcset target: every name in every spec of SRCSET, checked on the first name."""
    target = Target(pattern=f"/thumb/%s/{scenario.source}/{LINK_PATTERN}", first=0,
                    count=env.names(scenario), specs=SRCSET)
    for spec in SRCSET:
        answer = _expect(base_url + target.pattern % (spec, 0), 200)
        try:
            size = Image.open(io.BytesIO(answer.body)).size
        except OSError as error:
            raise TargetBroken(f"{target.pattern % (spec, 0)} is not an image: {error}") from error
        if size[0] != int(spec.split("x")[0]):
            raise TargetBroken(f"{target.pattern % (spec, 0)} is {size[0]} px wide")
    return target


def expected_size(scenario: Scenario, env: Environment) -> tuple[int, int]:
    """The thumbnail size of a cold ``scenario``: its box applied to its sources' size."""
    with Image.open(env.corpus.root / scenario.source / (LINK_PATTERN % 0)) as source:
        width, height = scenario.box
        return contain(source.size, (width, height or UNBOUNDED))


def _check_size(size: tuple[int, int], scenario: Scenario, env: Environment) -> None:
    expected = expected_size(scenario, env)
    if tuple(size) != expected:
        raise TargetBroken(f"renders {size[0]}x{size[1]}, expected {expected[0]}x{expected[1]}")


def _static_target(scenario: Scenario, base_url: str) -> Target:
    """Targets of the static peers: ``thumb.jpg`` stands for the cached thumbnail."""
    if scenario.request == "hit":
        return _static(base_url, "/thumb.jpg")
    if scenario.request == "revalidation":
        return _revalidating(base_url, "/thumb.jpg")
    if scenario.request == "original":
        return _static(base_url, "/original.jpg")
    raise KeyError(scenario.key)


def _static(base_url: str, path: str) -> Target:
    _expect(base_url + path, 200)
    return Target(path=path)


def _revalidating(base_url: str, path: str) -> Target:
    """A conditional GET of ``path`` with the ETag it was served with; checked to answer 304."""
    etag = _expect(base_url + path, 200).headers.get("etag")
    if not etag:
        raise TargetBroken(f"{path} has no ETag")
    _expect(base_url + path, 304, {"If-None-Match": etag})
    return Target(path=path, header=("If-None-Match", etag))


def _expect(url: str, status: int, headers: dict[str, str] | None = None) -> Probe:
    try:
        answer = probe(url, headers)
    except OSError as error:  # urllib's URLError included
        raise TargetBroken(f"GET {url} failed: {error}") from error
    if answer.status != status:
        raise TargetBroken(f"GET {url} answered {answer.status}, expected {status}")
    return answer


def _nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def _tail(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
