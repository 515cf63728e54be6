"""Choosing scenarios by key."""

import pytest
from scenarios import FULL, SCENARIOS, select


class TestSelect:
    """--only keeps the canonical order and rejects unknown keys."""

    def test_all_by_default(self):
        assert select(None) == SCENARIOS

    def test_canonical_order(self):
        assert [s.key for s in select(["memory", "hit"])] == ["hit", "memory"]

    def test_unknown_key_names_the_choices(self):
        with pytest.raises(ValueError, match="cold-24mp"):
            select(["warm"])

    def test_memory_runs_longer(self):
        memory = select(["memory"])[0]
        assert memory.seconds(FULL) == 20 and memory.cold
