"""What our server costs around a cold render, in CPU milliseconds per request (issue 14).

    .venv/bin/python bench/cold_overhead.py [--count 200] [--rounds 3] [--sets 2mp 24mp]
        [--concurrency 4] [--workers 2] [--profile-job N] [--py-spy DIR]

For each set (2 MP → 512x512, 24 MP → 320 px wide) it starts our server as ``bench/run.py``
does (``OurServer.node``: ``--workers`` uvicorn workers, render_workers = cores, a fresh shared
disk tier, the machine's intermediates beside it), warms it up on names the rounds do not use,
then sends ``--count`` distinct cold requests at ``--concurrency`` per round and reads the CPU
time (utime + stime, ``/proc/PID/stat``) of every process of the server's tree before and after.

CPU per request is the work done, which other load on a shared 2-core machine hardly moves (a
rate moves ±30 % with it). Beside it, in this process and on the same files:

- our render job alone (``_read_and_render``: read, scan, decode, resize, encode; no pool,
  no intermediate tier), CPU per image;
- Pillow alone (``render_loop.PillowRender``: open, draft, resize, encode), CPU per image.

The server's figure is split by role: ``master`` (uvicorn's supervisor), ``server`` (the
uvicorn workers: HTTP, service, shared tier, fingerprints, logs, metrics), ``render`` (the
render processes: the job plus the pool's transport and the intermediate tiers) and ``other``
(fork servers, resource trackers). ``render - job`` is what the render process adds to the
job; ``server`` is what the HTTP side adds.

``--profile-job N`` prints a cProfile of the in-process job over N images. ``--py-spy DIR``
records each round's whole server tree with py-spy (if installed: ``pip install py-spy``),
writing collapsed stacks per process, and prints the heaviest frames of the server processes.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import pstats
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR.parent))

from corpus import LINK_PATTERN, ensure_corpus  # noqa: E402
from memory import process_tree  # noqa: E402
from peers import Environment, OurServer  # noqa: E402
from render_loop import UNBOUNDED, PillowRender  # noqa: E402
from scenarios import QUICK, SCENARIOS  # noqa: E402

SETS = {"2mp": "cold-2mp", "24mp": "cold-24mp"}
WARMUP = 16  # requests before the rounds, on names no round uses
CLOCK = os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    corpus = ensure_corpus(BENCH_DIR / ".corpus", names_24mp=3000, names_2mp=6000)
    scenarios = {scenario.key: scenario for scenario in SCENARIOS}
    results = {}
    with tempfile.TemporaryDirectory(prefix="cold-overhead-") as scratch:
        static = Path(scratch) / "static"
        static.mkdir()
        env = Environment(nproc=os.cpu_count() or 1, corpus=corpus, workdir=Path(scratch), static_dir=static,
                          venvs=BENCH_DIR / ".venvs", workers=args.workers, timing=QUICK)
        for name in args.sets:
            scenario = scenarios[SETS[name]]
            results[name] = _measure_set(env, scenario, args)
    print(json.dumps(results, indent=1))
    return 0


def _measure_set(env: Environment, scenario, args: argparse.Namespace) -> dict:
    width, height = scenario.box
    folder = env.corpus.root / scenario.source
    spec = f"{width}x{height or ''}"
    total = args.count * max(args.rounds, 1) + WARMUP
    names = [LINK_PATTERN % n for n in range(total)]
    print(f"== {scenario.title}: {args.rounds} rounds x {args.count} distinct requests, "
          f"concurrency {args.concurrency}, {args.workers} uvicorn worker(s)", flush=True)

    if args.server_only:
        jobs, job, pillow, loaded = {}, 0.0, 0.0, 0.0
    else:
        jobs = _job_cpu_ms(folder, names[WARMUP:WARMUP + args.count], spec, args.profile_job)
        job = jobs["job"]
        pillow = _pillow_cpu_ms(folder, names[WARMUP:WARMUP + args.count], (width, height or UNBOUNDED))
        loaded = _pillow_loaded_cpu_ms(env, scenario, args.pillow_seconds)
    print("in process, one at a time, CPU ms per image: " + ", ".join(f"{key} {value:.1f}" for key, value in jobs.items())
          + f"; Pillow alone {pillow:.1f}; Pillow alone on {env.nproc} threads for {args.pillow_seconds:g} s "
          f"(render_loop.py, as the bench runs it) {loaded:.1f}", flush=True)

    if not args.rounds:
        return {"job_ms": jobs, "pillow_ms": pillow, "pillow_loaded_ms": loaded}
    ours = OurServer(env)
    if args.checkout:
        ours.checkout = args.checkout.resolve()
    rounds = []
    if args.profile_server:
        _profile_children(Path(args.profile_server) / scenario.source)
    with ours.node(scenario, tag=f"overhead-{scenario.source}", shared="disk") as running:
        host, port = running.base_url.removeprefix("http://").split(":")
        prefix = f"/thumb/{spec}/{scenario.source}/"
        _send(host, int(port), [prefix + n for n in names[:WARMUP]], args.concurrency)
        for index in range(args.rounds):
            first = WARMUP + index * args.count
            paths = [prefix + n for n in names[first:first + args.count]]
            if args.profile_server and index == args.rounds - 1:
                _signal_servers(running.pid, signal.SIGUSR1)  # the profile counts this round only
            spy = _start_py_spy(args.py_spy, running.pid, scenario.source, index)
            before = _cpu_by_role(running.pid)
            started = time.monotonic()
            _send(host, int(port), paths, args.concurrency)
            elapsed = time.monotonic() - started
            after = _cpu_by_role(running.pid)
            _stop_py_spy(spy)
            per_role = {role: (after.get(role, 0) - before.get(role, 0)) / CLOCK * 1000 / len(paths)
                        for role in ("master", "server", "render", "other")}
            per_role["total"] = sum(per_role.values())
            per_role["rate"] = len(paths) / elapsed
            rounds.append(per_role)
            if args.profile_server and index == args.rounds - 1:
                _signal_servers(running.pid, signal.SIGUSR2)
            print(f"round {index + 1}: CPU ms/request total {per_role['total']:.1f} = server "
                  f"{per_role['server']:.1f} + render {per_role['render']:.1f} + master "
                  f"{per_role['master']:.1f} + other {per_role['other']:.1f}  ({per_role['rate']:.1f} req/s)",
                  flush=True)
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    if args.server_only:
        print(f"median: total {median['total']:.1f}, server {median['server']:.1f}, render {median['render']:.1f}, "
              f"{median['rate']:.1f} req/s", flush=True)
        return {"rounds": rounds, "median": median}
    print(f"median: total {median['total']:.1f}, server {median['server']:.1f}, render {median['render']:.1f} "
          f"(render - job {median['render'] - job:+.1f}), overhead over the job {median['total'] - job:+.1f}; "
          f"CPU per image, Pillow alone / ours: {pillow / median['total']:.2f} (one at a time), "
          f"{loaded / median['total']:.2f} (on {env.nproc} threads)", flush=True)
    if args.py_spy:
        _summarise_py_spy(Path(args.py_spy), scenario.source)
    if args.profile_server:
        os.environ.pop("COLD_OVERHEAD_PROFILE", None)
        _summarise_profiles(Path(args.profile_server) / scenario.source, args.count)
    return {"job_ms": jobs, "pillow_ms": pillow, "pillow_loaded_ms": loaded, "rounds": rounds, "median": median}


# -- load ---------------------------------------------------------------------------------------


def _send(host: str, port: int, paths: list[str], concurrency: int) -> None:
    """GET every path once, `concurrency` keep-alive connections pulling from one list; every
    answer must be a 200 with a body."""
    queue = list(reversed(paths))
    lock = threading.Lock()
    failures: list[str] = []

    def work() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=120)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    path = queue.pop()
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                if response.status != 200 or not body:
                    failures.append(f"{path}: {response.status} {body[:120]!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")


# -- CPU of the server's tree -------------------------------------------------------------------


def _cpu_by_role(root: int) -> Counter:
    """Clock ticks (utime + stime) of every live process of the tree, summed by role."""
    ticks: Counter = Counter()
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        ticks[_role(root, pid, int(fields[1]), command)] += int(fields[11]) + int(fields[12])
    return ticks


def _role(root: int, pid: int, parent: int, command: bytes) -> str:
    """master, server (a uvicorn worker), render (a child of a fork server: it inherits the fork
    server's command line) or other (fork servers, resource trackers)."""
    if pid == root:
        return "master"
    try:
        parent_command = Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        return "other"
    if b"forkserver" in parent_command:
        return "render"
    if b"forkserver" in command or b"resource_tracker" in command:
        return "other"
    return "server" if parent == root else "other"


# -- in process ---------------------------------------------------------------------------------


def _job_cpu_ms(folder: Path, names: list[str], spec_text: str, profile: int) -> dict[str, float]:
    """CPU ms per image of the server's render job on `names`, after one warm-up each:

    ``job``        called here, no intermediate tier (what issue14.md measured)
    ``job+tiers``  called here with the tiers a render process has (64 MiB in memory, the
                   machine's folder, here a temporary one): what keeping intermediates costs
    ``pool``       through a RenderPool of one process, one job at a time, tiers off: this
                   process plus its render process (the transport's cost, no contention)
    ``pool+tiers`` the same with the server's default tiers
    """
    import asyncio

    import server.thumbnails.pool as pool_module
    from server.app import thumbnail_options
    from server.config import Settings
    from server.imaging import RenderRequest
    from server.thumbnails.intermediates import HostIntermediates, IntermediateCache
    from server.thumbnails.pool import RenderPool
    from server.thumbnails.service import _read_and_render, source_key
    from server.thumbnails.spec import parse_spec
    from storage import FileStore

    settings = Settings()
    options = thumbnail_options(settings)
    spec = parse_spec(spec_text, options.rules)
    request = RenderRequest(width=spec.width, height=spec.height, fit=spec.fit, format=spec.format,
                            quality=spec.quality, encoder=options.encoder, effects=spec.effects)
    store = FileStore(folder.parent, {"jpg"})
    sources = [store.resolve(f"{folder.name}/{name}") for name in names]
    figures = {}

    def in_process() -> float:
        _read_and_render(store, sources[0], request, options.limits)  # imports, first-use set-up
        started = time.process_time()
        for source in sources[1:]:
            _read_and_render(store, source, request, options.limits)
        return (time.process_time() - started) * 1000 / (len(sources) - 1)

    figures["job"] = in_process()
    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for source in sources[:profile]:
            _read_and_render(store, source, request, options.limits)
        profiler.disable()
        stats = io.StringIO()
        pstats.Stats(profiler, stream=stats).sort_stats("cumulative").print_stats(25)
        print(stats.getvalue())
    limits = settings.limits
    with tempfile.TemporaryDirectory(prefix="cold-overhead-host-", dir="/dev/shm") as host:
        pool_module._intermediates = IntermediateCache(limits.intermediate_bytes,
                                                       HostIntermediates(host, limits.host_intermediate_bytes))
        try:
            figures["job+tiers"] = in_process()
        finally:
            pool_module._intermediates = None

    figures["host put"] = _host_put_ms(folder / names[0], request, options.limits,
                                       limits.host_intermediate_bytes, len(names))

    async def through_pool(pool: RenderPool) -> float:
        await pool.run(_read_and_render, store, sources[0], request, options.limits)
        before = _cpu_by_role(os.getpid())
        for source in sources[1:]:
            await pool.run(_read_and_render, store, source, request, options.limits,
                           affinity=source_key(source))
        after = _cpu_by_role(os.getpid())
        spent = sum(after.values()) - sum(before.values())  # this process and its render process
        return spent / CLOCK * 1000 / (len(sources) - 1)

    preload = ("server.thumbnails.service", "server.imaging.intermediate", "server.thumbnails.info",
               "server.imaging.facts")
    with tempfile.TemporaryDirectory(prefix="cold-overhead-host-", dir="/dev/shm") as host:
        for label, tiers in (("pool", False), ("pool+tiers", True)):
            pool = RenderPool(workers=1, queue=4, timeout_s=60, preload=preload,
                              intermediate_bytes=limits.intermediate_bytes if tiers else 0,
                              host_intermediates=(host, limits.host_intermediate_bytes) if tiers else None)
            try:
                figures[label] = asyncio.run(through_pool(pool))
            finally:
                pool.shutdown()
    return figures


def _host_put_ms(path: Path, request, limits, max_bytes: int, count: int) -> float:
    """CPU ms of one `HostIntermediates.put` (the machine's tier in /dev/shm, written on every
    cold render) of `path`'s intermediate, with the folder kept full as on a busy server."""
    from server.imaging.decode import decoding, open_source
    from server.imaging.intermediate import decode_class, decode_intermediate, read_facts
    from server.thumbnails.intermediates import HostIntermediates

    data = path.read_bytes()
    header = open_source(data, limits)
    with decoding():
        facts = read_facts(header)
        eighths = decode_class(facts, request.box)
        intermediate = decode_intermediate(header, data, facts, eighths)
    with tempfile.TemporaryDirectory(prefix="cold-overhead-host-", dir="/dev/shm") as folder:
        host = HostIntermediates(folder, max_bytes)
        fill = max_bytes // max(1, intermediate.nbytes) + 2
        for n in range(fill):
            host.put(("fill", n), eighths, intermediate)
        started = time.process_time()
        for n in range(count):
            host.put(("measured", n), eighths, intermediate)
        return (time.process_time() - started) * 1000 / count


def _pillow_cpu_ms(folder: Path, names: list[str], box: tuple[int, int]) -> float:
    """CPU ms per image of Pillow alone (bench/render_loop.py's renderer) on `names`."""
    render = PillowRender()
    render(str(folder / names[0]), box)
    started = time.process_time()
    for name in names:
        render(str(folder / name), box)
    return (time.process_time() - started) * 1000 / len(names)


# -- cProfile of the server processes -----------------------------------------------------------

_SITECUSTOMIZE = """
import os
if os.environ.get("COLD_OVERHEAD_PROFILE"):
    import cProfile, signal, time
    _profile = cProfile.Profile(time.process_time)
    _profile.enable()

    def _dump(signum, frame):
        _profile.disable()
        _profile.dump_stats(os.path.join(os.environ["COLD_OVERHEAD_PROFILE"], f"{os.getpid()}.prof"))
        _profile.enable()

    def _restart(signum, frame):
        _profile.disable()
        _profile.clear()
        _profile.enable()

    signal.signal(signal.SIGUSR1, _restart)
    signal.signal(signal.SIGUSR2, _dump)
"""


def _profile_children(folder: Path) -> None:
    """Make every Python process the server starts profile itself in CPU time, and write its
    profile into `folder` on SIGUSR2 (`_dump_profiles` sends it to the master and the uvicorn
    workers only): a sitecustomize on PYTHONPATH, switched on by an environment variable the
    server inherits."""
    folder.mkdir(parents=True, exist_ok=True)
    site = folder / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    os.environ["COLD_OVERHEAD_PROFILE"] = str(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))


def _signal_servers(root: int, signum: int) -> None:
    """Send `signum` to uvicorn's master and workers (SIGUSR1: start profiling afresh; SIGUSR2:
    write the profile)."""
    for pid in process_tree(root):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if _role(root, pid, parent, command) in ("master", "server"):
            os.kill(pid, signum)
    time.sleep(1.0 if signum == signal.SIGUSR1 else 3.0)


def _summarise_profiles(folder: Path, requests: int, top: int = 40) -> None:
    """The server processes' profiles summed, in CPU ms per request, by own and cumulative time."""
    files = [str(path) for path in folder.glob("*.prof")]
    if not files:
        print(f"no profile was written into {folder}")
        return
    stats = pstats.Stats(*files)
    print(f"cProfile (CPU time) of {len(files)} server processes during the last round, ms per request "
          f"over its {requests} requests (own, cumulative, calls):")
    for key, title in (("tottime", "own"), ("cumulative", "cumulative")):
        print(f"-- {title}")
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2 if key == "tottime" else 3], reverse=True)
        for (filename, line, function), (_, calls, own, cumulative, _) in rows[:top]:
            where = "/".join(filename.split("/")[-2:])
            print(f"  {own * 1000 / requests:7.3f} {cumulative * 1000 / requests:7.3f} {calls:8d}  "
                  f"{where}:{line}({function})")


def _pillow_loaded_cpu_ms(env: Environment, scenario, seconds: float) -> float:
    """CPU ms per image of Pillow alone as `bench/run.py` measures it: render_loop.py on one
    thread per core at nice 10, distinct names, for `seconds`."""
    width, height = scenario.box
    command = [sys.executable, str(BENCH_DIR / "render_loop.py"), "--engine", "pillow", "--nice", "10",
               "--dir", str(env.corpus.root / scenario.source), "--pattern", LINK_PATTERN,
               "--count", str(env.names(scenario)), "--width", str(width), "--threads", str(env.nproc),
               "--seconds", str(seconds), "--warmup", "1", *(["--height", str(height)] if height else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["cpu_seconds"] * 1000 / figures["images"]


# -- py-spy -------------------------------------------------------------------------------------


def _start_py_spy(folder: str | None, pid: int, tag: str, index: int) -> subprocess.Popen | None:
    if not folder:
        return None
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    Path(folder).mkdir(parents=True, exist_ok=True)
    output = Path(folder) / f"{tag}-round{index + 1}.txt"
    spy = subprocess.Popen([binary, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                            "--rate", "250", "--output", str(output), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches to every process of the tree
    return spy


def _stop_py_spy(spy: subprocess.Popen | None) -> None:
    if spy is None:
        return
    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()


def _summarise_py_spy(folder: Path, tag: str, top: int = 30) -> None:
    """The frames the server processes (not the render processes) spend most samples in, own
    time (the innermost frame) and inclusive, summed over the set's rounds."""
    own: Counter = Counter()
    inclusive: Counter = Counter()
    samples = 0
    for path in sorted(folder.glob(f"{tag}-round*.txt")):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            if not frames or "forkserver" in stack or "_serve (server/thumbnails/pool.py" in stack:
                continue
            if "select (selectors.py" in frames[-1] or "_run_once" in frames[-1] and len(frames) < 6:
                continue  # idle in the event loop
            count_ = int(count)
            samples += count_
            own[frames[-1]] += count_
            for frame in set(frames):
                inclusive[frame] += count_
    print(f"py-spy, server processes, {samples} busy samples")
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"-- {title}")
        for frame, count_ in counter.most_common(top):
            print(f"{count_:6d} {count_ * 100 / max(samples, 1):5.1f}%  {frame[:150]}")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="distinct requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["2mp", "24mp"])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--profile-job", type=int, default=0, metavar="N",
                        help="print a cProfile of the in-process job over N images")
    parser.add_argument("--server-only", action="store_true",
                        help="measure the server alone (no in-process job, no Pillow alone)")
    parser.add_argument("--pillow-seconds", type=float, default=10.0,
                        help="how long Pillow alone runs on every core (render_loop.py)")
    parser.add_argument("--checkout", type=Path, metavar="DIR",
                        help="run the server of another checkout (e.g. `git archive main | tar -x -C DIR`)")
    parser.add_argument("--profile-server", metavar="DIR",
                        help="cProfile every server process (CPU time) into DIR and print the sum")
    parser.add_argument("--py-spy", metavar="DIR", help="record the server's tree with py-spy into DIR")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
