"""CPU accounting that tells the run's own work from other processes'."""

import subprocess
import sys

from machine import ForeignLoad, describe_machine

SPIN = "import time\nwhile time.process_time() < 0.6: pass"


class TestForeignLoad:
    """A child's CPU time is the run's own, not foreign."""

    def test_own_child_is_counted_once(self):
        with ForeignLoad() as load:
            subprocess.run([sys.executable, "-c", SPIN], check=True)
        # The child spins 0.6 s of CPU (plus interpreter start-up); counting its reaped time twice
        # would double it. Other processes on a shared machine do not enter this figure.
        assert 0.5 <= load.own_seconds <= 1.0
        assert load.foreign <= load.busy

    def test_machine_description_names_the_cores(self):
        assert describe_machine()["cores (nproc)"].isdigit()
