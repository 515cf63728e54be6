"""Services the harness starts: a Redis of its own, stopped when the block ends."""

import shutil
import socket
import sys

import pytest
from process import StartFailed, answers_ping, redis_server, service


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
class TestRedisServer:
    """On 127.0.0.1, answering PING inside the block and gone after it."""

    def test_started_on_loopback_and_stopped(self, tmp_path):
        with redis_server(tmp_path / "redis") as url:
            assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            assert answers_ping(port)
        assert not answers_ping(port)


class TestService:
    """A readiness check other than HTTP; a child that dies is reported with its log."""

    def test_custom_ready_check(self, tmp_path):
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        code = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', %d)); s.listen(); "
                "time.sleep(30)" % port)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        with service([sys.executable, "-c", code], log=tmp_path / "log", ready=listening) as child:
            assert child.poll() is None
        assert child.poll() is not None

    def test_exit_before_ready(self, tmp_path):
        with pytest.raises(StartFailed, match="boom"):
            with service([sys.executable, "-c", "print('boom')"], log=tmp_path / "log",
                         ready=lambda: False):
                pass
