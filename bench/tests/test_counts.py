"""The render-count scenarios' parts: a burst on fresh connections, its summary, the log count."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from counts import Answer, burst, count_renders, parse_response, renders_in, summarize

LOG = """\
INFO:     Started server process [4242]
INFO:     Waiting for application startup.
INFO:     rendered 2mp/p00000.jpg 512x512 as jpeg (41234 bytes)
INFO:     rendered 2mp/p00001.jpg 512x512 as jpeg (40001 bytes)
WARNING:  shared redis tier failing, serving without it (next try in 5.0 s): ConnectionError: refused
INFO:     rendered 2mp/p00000.jpg 512x512 as jpeg (41234 bytes)
INFO:     Shutting down
"""


class TestRenderCount:
    """One `rendered` line per render, whichever process wrote it."""

    def test_counts_only_render_lines(self):
        assert count_renders(LOG) == 3

    def test_a_path_named_rendered_is_not_a_render(self):
        assert count_renders("INFO:     Application startup complete.\nGET /rendered.jpg\n") == 0

    def test_over_several_logs_and_a_missing_one(self, tmp_path):
        (tmp_path / "a.log").write_text(LOG)
        (tmp_path / "b.log").write_text("INFO:     rendered x.jpg 320x as jpeg (1 bytes)\n")
        assert renders_in(tmp_path / "a.log", tmp_path / "b.log", tmp_path / "gone.log") == 4


class TestParseResponse:
    """A response read to EOF: status, headers, body."""

    def test_status_headers_body(self):
        status, headers, body = parse_response(
            b'HTTP/1.1 200 OK\r\nETag: "abc"\r\ncontent-length: 3\r\n\r\nxyz')
        assert (status, headers["etag"], headers["content-length"], body) == (200, '"abc"', "3", b"xyz")

    @pytest.mark.parametrize("raw", [b"", b"HTTP/1.1 200 OK\r\n", b"garbage\r\n\r\n"])
    def test_incomplete_or_garbage_is_an_error(self, raw):
        with pytest.raises(ValueError):
            parse_response(raw)


class TestSummarize:
    """Failures, and URLs whose answers disagree."""

    def test_counts(self):
        answers = [
            Answer("/a", 200, '"1"', "d1"), Answer("/a", 200, '"1"', "d1"),
            Answer("/b", 200, '"2"', "d2"), Answer("/b", 200, '"2"', "other bytes"),
            Answer("/c", 503), Answer("/c", 0, error="TimeoutError"),
        ]
        summary = summarize(answers)
        assert (summary.requests, summary.distinct, summary.failed, summary.inconsistent) == (6, 3, 2, 1)
        assert summary.first_error == "status 503"


class _Etagged(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: set[int] = set()

    def do_GET(self):
        self.peers.add(self.client_address[1])
        body = self.path.encode()
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("ETag", f'"{self.path}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def etagged():
    _Etagged.peers = set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Etagged)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Etagged.peers
    server.shutdown()
    server.server_close()


class TestBurst:
    """Every URL at once, each on its own connection, answers in the order asked."""

    def test_fresh_connection_per_request(self, etagged):
        base, peers = etagged
        urls = [f"{base}/t{n % 3}.jpg" for n in range(12)] + [f"{base}/missing"]
        answers = burst(urls, timeout=10)
        assert [a.url for a in answers] == urls
        assert [a.status for a in answers] == [200] * 12 + [404]
        assert answers[0].etag == '"/t0.jpg"' and answers[0].digest == answers[3].digest
        assert len(peers) == 13  # one client port per request: no connection reused
        assert summarize(answers).failed == 1 and summarize(answers).inconsistent == 0

    def test_refused_connection_is_a_failed_answer(self):
        [answer] = burst(["http://127.0.0.1:1/x.jpg"], timeout=5)
        assert answer.status == 0 and "ConnectionRefusedError" in answer.error
