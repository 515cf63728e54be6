"""wrk targets, its output, and the Lua script driving it."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from load import LoadFailed, Target, parse_wrk_output, run_wrk

RESULT = {
    "requests": 1000, "duration_us": 2_000_000, "bytes": 123456,
    "errors": {"connect": 0, "read": 0, "write": 0, "status": 3, "timeout": 0},
    "latency_us": {"p50": 1500, "p90": 2500, "p99": 9000, "mean": 1700.5, "max": 12000},
    "reused_urls": 0,
}


class TestTarget:
    """A target is either one path or a pattern over a range of names."""

    def test_fixed_target_passes_its_header(self):
        target = Target(path="/a.jpg", header=("If-None-Match", '"x"'))
        assert target.script_args(1) == ["fixed", "/a.jpg", "If-None-Match", '"x"']

    def test_distinct_target_passes_its_range_and_threads(self):
        target = Target(pattern="/p%05d.jpg", first=10, count=90)
        assert target.script_args(2) == ["distinct", "/p%05d.jpg", "10", "90", "2"]

    def test_shifted_keeps_the_pattern(self):
        shifted = Target(pattern="/p%05d.jpg", count=100).shifted(20, 80)
        assert (shifted.pattern, shifted.first, shifted.count) == ("/p%05d.jpg", 20, 80)

    def test_needs_exactly_one_of_path_and_pattern(self):
        with pytest.raises(ValueError):
            Target()
        with pytest.raises(ValueError):
            Target(path="/a", pattern="/p%d")


class TestParse:
    """The BENCH_JSON line becomes a LoadResult in requests/s and milliseconds."""

    def test_rate_latency_and_failures(self):
        result = parse_wrk_output("Running 2s test\nBENCH_JSON " + json.dumps(RESULT) + "\n")
        assert result.rate == 500
        assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
        assert result.failed == 3 and result.errors == {"status": 3}

    def test_missing_line_names_wrk_error(self):
        with pytest.raises(LoadFailed, match="unable to connect"):
            parse_wrk_output("", "unable to connect to 127.0.0.1:1 Connection refused\n")


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    paths: list[str] = []

    def do_GET(self):
        self.paths.append(self.path)
        status = 304 if self.headers.get("If-None-Match") == '"e"' else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    _Recorder.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.paths
    server.shutdown()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
class TestScript:
    """wrk_target.lua against a local stdlib server for one second."""

    def test_distinct_mode_sends_each_name_once_then_counts_reuse(self, recorder):
        base, paths = recorder
        result = run_wrk(base, Target(pattern="/p%05d.jpg", first=5, count=20), concurrency=2, seconds=1)
        assert result.requests > 20
        assert set(paths) <= {f"/p{n:05d}.jpg" for n in range(5, 25)}
        # wrk spends one request() call verifying the script, so one name goes unsent.
        assert len(set(paths[:19])) == 19
        # ...and the requests in flight at the end were generated but not counted.
        assert result.requests - 20 <= result.reused_urls <= result.requests - 20 + 1 + 2

    def test_fixed_mode_sends_the_header(self, recorder):
        base, paths = recorder
        result = run_wrk(base, Target(path="/t.jpg", header=("If-None-Match", '"e"')),
                         concurrency=1, seconds=1)
        assert result.requests > 0 and result.failed == 0
        assert set(paths) == {"/t.jpg"}
