"""RSS of a process tree, read from /proc."""

import os
import subprocess
import sys

from memory import RssSampler, process_tree, read_status


class TestMemory:
    """The sampler sees children and the kernel's high-water mark."""

    def test_tree_includes_a_child(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        try:
            assert child.pid in process_tree(os.getpid())
        finally:
            child.kill()
            child.wait()

    def test_child_allocation_shows_in_the_peak(self):
        code = "b = bytearray(80 * 1024 * 1024); import time; time.sleep(0.5)"
        child = subprocess.Popen([sys.executable, "-c", code])
        with RssSampler(os.getpid(), interval=0.02) as sampler:
            child.wait()
        assert sampler.peak.process >= 80 * 1024 * 1024
        assert sampler.peak.tree >= sampler.peak.process

    def test_status_of_a_gone_process_is_empty(self):
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        child.wait()
        assert read_status(child.pid) == {}
