"""`make bench`: our server and its peers measured side by side in one run.

    .venv/bin/python bench/run.py [--quick] [--only SCENARIO ...] [--skip-peers] [--workers N]

Builds (or reuses) the corpus, installs what the peers need, runs every scenario against every
subject it lists with a fresh process each time, then prints the report and writes it to
``bench/results/`` (``latest`` for a full run, ``quick`` or ``partial`` otherwise).

The render-count scenarios (``shared-renders``, ``restart``) run our server alone, once per
setup of theirs, and count renders in its log instead of measuring a rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import tools
from corpus import describe, ensure_corpus
from counts import burst, renders_in, summarize
from load import LoadFailed, Target, probe, run_wrk
from machine import ForeignLoad, cpu_busy_share, describe_machine
from memory import RssSampler, cpu_seconds
from peers import (
    BENCH_DIR,
    Environment,
    HttpSubject,
    InProcess,
    OurServer,
    TargetBroken,
    TierUnavailable,
    build_subjects,
)
from process import StartFailed
from render_loop import UNBOUNDED, PillowRender
from report import Count, Measurement, Memory, Report, write
from scenarios import (
    BURST_DISTINCT,
    DEFAULT_CACHE_BYTES,
    INTERMEDIATE_BYTES,
    FULL,
    MEMORY_ALLOWANCE_BYTES,
    MEMORY_CACHE_BYTES,
    MEMORY_OFF_BYTES,
    MIB,
    QUICK,
    RESTART_THUMBNAILS,
    SCENARIOS,
    Scenario,
    Setup,
    Timing,
    select,
)

# Distinct names per cold source: more than the fastest subject renders in one run.
NAMES_24MP = 3000
NAMES_2MP = 6000
WARMUP_SHARE = 5  # a cold warm-up uses the first 1/WARMUP_SHARE of the names, the run the rest
STATIC_PEERS = {"nginx", "starlette", "asgi"}  # they serve thumb.jpg and original.jpg from a folder
BUSY_WARNING = 0.15  # share of CPU time other processes may use before the run is flagged


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        scenarios = select(args.only)
    except ValueError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 2
    timing = QUICK if args.quick else FULL
    corpus = ensure_corpus(BENCH_DIR / ".corpus", names_24mp=NAMES_24MP, names_2mp=NAMES_2MP)
    with tempfile.TemporaryDirectory(prefix="thumbbench-") as scratch:
        env = _environment(Path(scratch), corpus, timing, args.workers, args.baseline)
        runner = Runner(env, scenarios, skip_peers=args.skip_peers)
        report = runner.run()
    report.settings["corpus"] = describe(corpus)
    print()
    print(report.markdown())
    stem = "quick" if args.quick else "partial" if (args.only or args.skip_peers) else "latest"
    for path in write(report, BENCH_DIR / "results", stem):
        print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    return 0


class Runner:
    """Installs the subjects the scenarios need, measures them, and collects the report."""

    def __init__(self, env: Environment, scenarios: tuple[Scenario, ...], *, skip_peers: bool) -> None:
        self.env = env
        self.scenarios = scenarios
        wanted = {name for scenario in scenarios for name in scenario.subjects}
        if skip_peers:
            wanted &= {"ours", "baseline"}
        self.subjects = {n: s for n, s in build_subjects(env).items() if n in wanted}
        self.report = Report(
            machine=describe_machine(), settings=_settings(env), versions={},
            titles={scenario.key: scenario.title for scenario in SCENARIOS},
        )

    def run(self) -> Report:
        """Every scenario against every subject still standing, in order."""
        self._install()
        self._check_idle()
        if STATIC_PEERS & self.subjects.keys():
            self.report.settings["thumb.jpg (static peers)"] = self._prepare_static()
        for scenario in self.scenarios:
            print(f"\n== {scenario.title}", flush=True)
            if scenario.count:
                self._count(scenario)
                continue
            for name in scenario.subjects:
                if name in self.subjects:
                    self._measure(self.subjects[name], scenario)
        self.report.versions.update(self._versions())
        return self.report

    def _install(self) -> None:
        debian = tools.Debian()
        if any(isinstance(s, HttpSubject) for s in self.subjects.values()):
            try:
                debian.ensure("wrk")
            except tools.Unavailable as error:
                self._skip("wrk (every HTTP subject)", str(error))
                self.subjects = {n: s for n, s in self.subjects.items() if isinstance(s, InProcess)}
        for name, subject in list(self.subjects.items()):
            try:
                subject.install(debian)
            except tools.Unavailable as error:
                self._skip(subject.label, str(error))
                del self.subjects[name]
        if "ours" in self.subjects and any(s.needs_redis for s in self.scenarios):
            try:  # the Redis rows skip one by one if it is missing; the others run
                debian.ensure("redis-server")
            except tools.Unavailable as error:
                self._skip("redis-server (the Redis rows)", str(error))

    def _check_idle(self) -> None:
        """Record how busy the machine was before the first scenario; warn when others load it."""
        busy = cpu_busy_share()
        self.report.machine["CPU busy just before the run"] = f"{busy:.0%}"
        if busy > BUSY_WARNING:
            print(f"warning: the CPU was {busy:.0%} busy before the run (other processes); "
                  "the figures will be low and noisy", flush=True)

    def _prepare_static(self) -> str:
        """Fill the static folder; return where ``thumb.jpg`` came from.

        ``thumb.jpg`` holds the very bytes our server caches for the hit scenario, so nginx and
        the Starlette ceiling serve the same payload; Pillow renders it if our server is absent.
        """
        static = self.env.static_dir
        _link_or_copy(self.env.corpus.original, static / "original.jpg")
        ours = self.subjects.get("ours")
        body, source = None, "rendered by Pillow (our server unavailable)"
        if isinstance(ours, OurServer):
            body, headers = _fetch_hit_thumbnail(ours)
            if body:
                source = "fetched from our server"
                # The raw ASGI ceiling answers with the very headers our server sent.
                # Not the per-connection ones (urllib asked for Connection: close).
                skipped = ("date", "server", "connection", "keep-alive", "transfer-encoding")
                kept = {name: value for name, value in headers.items() if name not in skipped}
                (static / "thumb.headers.json").write_text(json.dumps(kept))
        if body is None:
            body, _ = PillowRender()(str(self.env.corpus.hit_source), (320, UNBOUNDED))
        (static / "thumb.jpg").write_bytes(body)
        return f"{len(body):,} bytes, {source}"

    def _measure(self, subject: HttpSubject | InProcess, scenario: Scenario) -> None:
        try:
            if isinstance(subject, InProcess):
                row = self._measure_in_process(subject, scenario)
            else:
                row = self._measure_http(subject, scenario)
        except StartFailed as error:
            self._skip(subject.label, f"did not start: {error}")
            del self.subjects[subject.name]
            return
        except (TargetBroken, LoadFailed, TierUnavailable) as error:
            self._skip(f"{subject.label} in {scenario.key}", str(error))
            return
        self.report.rows.append(row)
        failed = f", {row.failed} FAILED" if row.failed else ""
        print(f"   {subject.label:24} {row.rate:10,.1f} req/s  p50 {row.p50_ms:8.2f} ms  "
              f"p99 {row.p99_ms:8.2f} ms  RSS {row.peak_rss / 1e6:6.0f} MB{failed}", flush=True)

    def _measure_http(self, subject: HttpSubject, scenario: Scenario) -> Measurement:
        seconds = scenario.seconds(self.env.timing)
        with subject.serving(scenario) as running:
            warmup, measured = _split(subject.target(scenario, running.base_url))
            run_wrk(running.base_url, warmup, concurrency=scenario.concurrency,
                    seconds=self.env.timing.warmup)
            logged = renders_in(running.log) if running.log else 0
            cpu_before = cpu_seconds(running.pid)
            with RssSampler(running.pid) as rss, ForeignLoad() as foreign:
                result = run_wrk(running.base_url, measured, concurrency=scenario.concurrency,
                                 seconds=seconds)
            cpu_used = cpu_seconds(running.pid) - cpu_before
            renders = renders_in(running.log) - logged if running.log else None
            notes = self._server_notes(subject, scenario, running.base_url, rss.peak.process,
                                       renders)
        return Measurement(
            scenario=scenario.key, subject=subject.name, label=subject.label,
            concurrency=scenario.concurrency, rate=result.rate, p50_ms=result.p50_ms,
            p99_ms=result.p99_ms, peak_rss=rss.peak.tree, process_rss=rss.peak.process,
            requests=result.requests, failed=result.failed, reused_urls=result.reused_urls,
            foreign_cpu=foreign.foreign, notes=notes,
            cpu_ms=1000 * cpu_used / result.requests if result.requests else 0.0,
        )

    def _server_notes(self, subject: HttpSubject, scenario: Scenario, base_url: str,
                      process_rss: int, renders: int | None) -> tuple[str, ...]:
        """Our server's own counters: cache hits in a cold run, renders in a cached one, the
        shared-hit and memory scenarios' figures, from /metrics (every worker summed)."""
        if not isinstance(subject, OurServer):
            return ()
        stats = OurServer.stats(base_url)
        cache, shared = stats.get("cache", {}), stats.get("shared", {})
        notes = []
        if scenario.family and "intermediates" in stats:
            made = stats["intermediates"]
            notes.append(f"/metrics: {made.get('decoded', 0)} intermediates decoded, "
                         f"{made.get('reused', 0)} renders reused one (warm-up included)")
        if scenario.cold and cache.get("hits"):
            notes.append(f"{cache['hits']} cache hits in a cold run")
        if scenario.memory_bytes == MEMORY_OFF_BYTES:  # the shared-hit scenarios
            notes.append(f"memory tier off (cache.max_bytes {MEMORY_OFF_BYTES}): "
                         f"/metrics shows {cache.get('hits', 0)} memory hits, "
                         f"{shared.get('hits', 0)} {shared.get('kind', '?')} hits")
        memory_off = scenario.memory_bytes == MEMORY_OFF_BYTES
        if not scenario.cold and renders is not None and (renders or memory_off):
            notes.append(f"{renders} renders during the run")
        if scenario.key == "memory":
            self.report.memory = Memory(
                process_rss=process_rss, cache_bytes=cache.get("bytes", 0),
                cache_max_bytes=subject.cache_bytes(scenario), allowance=MEMORY_ALLOWANCE_BYTES,
                shared=shared.get("kind", ""), intermediate_bytes=INTERMEDIATE_BYTES,
            )
            notes.append(f"{cache.get('bytes', 0) / 1e6:.1f} MB in cache at the end; "
                         f"shared tier {shared.get('kind', '?')}")
        return tuple(notes)

    def _count(self, scenario: Scenario) -> None:
        """A render-count scenario: one :class:`Count` per setup, our server alone."""
        ours = self.subjects.get("ours")
        if not isinstance(ours, OurServer):
            return
        for setup in scenario.setups:
            try:
                with ForeignLoad() as foreign:
                    if scenario.count == "burst":
                        count = self._burst_count(ours, scenario, setup)
                    else:
                        count = self._restart_count(ours, scenario, setup)
            except (StartFailed, TierUnavailable) as error:
                self._skip(f"{ours.label} in {scenario.key} ({setup.name})", str(error))
                continue
            count = replace(count, foreign_cpu=foreign.foreign)
            self.report.counts.append(count)
            bad = f", {count.failed} FAILED" if count.failed else ""
            bad += f", {count.inconsistent} URLs INCONSISTENT" if count.inconsistent else ""
            print(f"   {setup.label:40} {count.renders:4} renders / {count.distinct} thumbnails "
                  f"= {count.per_distinct:.2f}  ({count.requests} requests, "
                  f"{count.seconds:.2f} s){bad}", flush=True)

    def _burst_count(self, ours: OurServer, scenario: Scenario, setup: Setup) -> Count:
        """``scenario.concurrency`` requests at once over ``BURST_DISTINCT`` thumbnails, each on
        a fresh connection and spread over the setup's nodes; renders counted in their logs."""
        paths = ours.thumbnail_paths(scenario, BURST_DISTINCT)
        tag = f"{scenario.key}-{setup.name}"
        with ExitStack() as stack:
            redis_url = _redis_for(stack, ours, setup, tag)
            nodes = [stack.enter_context(ours.node(
                scenario, tag=f"{tag}-node{n}", shared=setup.shared, workers=setup.workers,
                redis_url=redis_url, disk_path=self.env.workdir / f"results-ours-{tag}",
            )) for n in range(setup.nodes)]
            logs = [node.log for node in nodes if node.log]
            logged = renders_in(*logs)
            # Request n asks for thumbnail n mod D on node (n div D) mod nodes: every thumbnail
            # is asked for of every node, several times, all at once.
            urls = [nodes[(n // len(paths)) % len(nodes)].base_url + paths[n % len(paths)]
                    for n in range(scenario.concurrency)]
            started = time.monotonic()
            answers = burst(urls, timeout=scenario.seconds(self.env.timing))
            elapsed = time.monotonic() - started
            renders = renders_in(*logs) - logged
        summary = summarize(answers)
        notes = [f"{setup.nodes} node(s) × {setup.workers or self.env.workers} worker(s), "
                 f"cache.shared {setup.shared}"]
        if summary.first_error:
            notes.append(f"first failure: {summary.first_error}")
        return Count(
            scenario=scenario.key, setup=setup.name, label=setup.label, requests=summary.requests,
            distinct=len(paths), renders=renders, seconds=elapsed, failed=summary.failed,
            inconsistent=summary.inconsistent, notes=tuple(notes),
        )

    def _restart_count(self, ours: OurServer, scenario: Scenario, setup: Setup) -> Count:
        """Serve ``RESTART_THUMBNAILS`` thumbnails, stop the server, start a new one on the same
        disk folder (and Redis), ask for them again: the renders of the second life."""
        paths = ours.thumbnail_paths(scenario, RESTART_THUMBNAILS)
        tag = f"{scenario.key}-{setup.name}"
        seconds = scenario.seconds(self.env.timing)
        lives = []
        with ExitStack() as stack:
            redis_url = _redis_for(stack, ours, setup, tag)
            for life in ("before", "after"):
                with ours.node(scenario, tag=f"{tag}-{life}", shared=setup.shared,
                               workers=setup.workers, redis_url=redis_url,
                               disk_path=self.env.workdir / f"results-ours-{tag}") as node:
                    started = time.monotonic()
                    answers = burst([node.base_url + path for path in paths], timeout=seconds)
                    elapsed = time.monotonic() - started
                    lives.append((answers, renders_in(node.log), elapsed))
        (before, renders_before, _), (after, renders, elapsed) = lives
        first, second = summarize(before), summarize(after)
        # The same thumbnail must come back with the same bytes and ETag after the restart.
        changed = sum(1 for old, new in zip(before, after) if old.status == new.status == 200
                      and (old.etag, old.digest) != (new.etag, new.digest))
        notes = [f"{setup.workers or self.env.workers} worker(s), cache.shared {setup.shared}; "
                 f"first life: {renders_before} renders"]
        if first.failed:
            notes.append(f"first life: {first.failed} of {first.requests} requests failed")
        if changed:
            notes.append(f"{changed} thumbnails came back with other bytes or ETag")
        if first.first_error or second.first_error:
            notes.append(f"first failure: {first.first_error or second.first_error}")
        return Count(
            scenario=scenario.key, setup=setup.name, label=setup.label, requests=second.requests,
            distinct=len(paths), renders=renders, seconds=elapsed, renders_before=renders_before,
            failed=first.failed + second.failed,
            inconsistent=first.inconsistent + second.inconsistent + changed, notes=tuple(notes),
        )

    def _measure_in_process(self, subject: InProcess, scenario: Scenario) -> Measurement:
        with ForeignLoad() as foreign:
            rendered = subject.render(scenario)
        return Measurement(
            scenario=scenario.key, subject=subject.name, label=subject.label,
            concurrency=self.env.nproc, rate=rendered.images / rendered.seconds,
            p50_ms=rendered.p50_ms, p99_ms=rendered.p99_ms, peak_rss=rendered.peak_rss,
            process_rss=rendered.peak_rss, requests=rendered.images,
            reused_urls=rendered.reused_names, foreign_cpu=foreign.foreign,
            notes=("in process, no HTTP; threads = cores",),
            cpu_ms=1000 * rendered.cpu_seconds / rendered.images if rendered.images else 0.0,
        )

    def _versions(self) -> dict[str, str]:
        versions = {s.label: s.version() for s in self.subjects.values()}
        if any(isinstance(s, HttpSubject) for s in self.subjects.values()):
            versions["wrk"] = tools.version_of(["wrk", "-v"])
        if any(scenario.needs_redis for scenario in self.scenarios):
            versions["redis-server"] = tools.version_of(["redis-server", "--version"])
        return versions

    def _skip(self, what: str, reason: str) -> None:
        line = f"skip: {what} — {reason}"
        print(line, flush=True)
        self.report.skips.append(line)


def _redis_for(stack: ExitStack, ours: OurServer, setup: Setup, tag: str) -> str | None:
    """A Redis of the row's own on ``stack`` when ``setup`` uses one: its URL (else None)."""
    return stack.enter_context(ours.redis(f"ours-{tag}")) if setup.shared == "redis" else None


def _fetch_hit_thumbnail(ours: OurServer) -> tuple[bytes | None, dict[str, str]]:
    """Our hit thumbnail's bytes and response headers (None, {} when it cannot be fetched)."""
    hit = next(scenario for scenario in SCENARIOS if scenario.key == "hit")
    try:
        with ours.serving(hit) as running:
            answer = probe(running.base_url + ours.hit_path_at(running.base_url))
    except (StartFailed, OSError):
        return None, {}
    return (answer.body, answer.headers) if answer.status == 200 else (None, {})


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:  # another file system
        shutil.copyfile(source, destination)


def _split(target: Target) -> tuple[Target, Target]:
    """(warm-up, measured) targets: disjoint name ranges when cold, the same target otherwise."""
    if not target.pattern:
        return target, target
    warm = target.count // WARMUP_SHARE
    return target.shifted(target.first, warm), target.shifted(target.first + warm, target.count - warm)


def _environment(scratch: Path, corpus, timing: Timing, workers: int, baseline: Path | None) -> Environment:
    static = scratch / "static"
    static.mkdir()
    return Environment(
        nproc=os.cpu_count() or 1, corpus=corpus, workdir=scratch, static_dir=static,
        venvs=BENCH_DIR / ".venvs", workers=workers, timing=timing, baseline=baseline,
    )


def _settings(env: Environment) -> dict[str, str]:
    timing = env.timing
    return {
        "mode": "quick" if timing == QUICK else "full",
        "durations": f"{timing.seconds:g} s per run after {timing.warmup:g} s warm-up; "
                     f"memory {timing.memory_seconds:g} s",
        "load": "wrk, 1 thread, keep-alive, 127.0.0.1; a fresh server process per row",
        "our server": f"{env.workers} uvicorn worker(s), limits.render_workers {env.nproc}, "
                      f"cache.max_bytes {DEFAULT_CACHE_BYTES // MIB} MiB "
                      f"(memory scenario: {MEMORY_CACHE_BYTES // MIB} MiB; shared-hit scenarios: "
                      f"{MEMORY_OFF_BYTES} byte, memory tier off)",
        "our shared tier": "cache.shared disk unless a scenario says otherwise, in a fresh folder "
                           "of the run's scratch directory per row; Redis: a redis-server the run "
                           "starts on 127.0.0.1 per row (no persistence), stopped after it",
        "Starlette ceiling": f"{env.workers} uvicorn worker(s), bytes from memory",
        "nginx": f"worker_processes {env.nproc}, sendfile, access_log off",
        "thumbor": f"file loader, no storage, ENGINE_THREADPOOL_SIZE {env.nproc}, "
                   "result storage only for hit",
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the thumbnail server against its peers.")
    parser.add_argument("--quick", action="store_true", help="short runs, for smoke testing")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO",
                        help=f"run only these ({', '.join(s.key for s in SCENARIOS)})")
    parser.add_argument("--skip-peers", action="store_true", help="measure our server alone")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="another checkout of this server (e.g. `git worktree add ../base main`) "
                             "measured beside this one in the same run, as subject `baseline`")
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--workers", type=int, default=cores,
                        help="uvicorn workers of our server and the Starlette ceiling "
                             f"(default: one per core, {cores} here, as server.workers: auto)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
