"""Choosing scenarios by key."""

import pytest
from scenarios import FULL, QUICK, SCENARIOS, select


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

    def test_shared_tier_scenarios_are_selectable(self):
        keys = ["restart", "shared-hit-redis", "shared-renders", "shared-hit-disk"]
        assert [s.key for s in select(keys)] == ["shared-renders", "shared-hit-disk",
                                                 "shared-hit-redis", "restart"]


class TestSharedTierScenarios:
    """What the shared-tier scenarios ask of our server."""

    def by_key(self, key):
        return next(s for s in SCENARIOS if s.key == key)

    def test_render_counts_are_not_wrk_runs(self):
        for key in ("shared-renders", "restart"):
            scenario = self.by_key(key)
            assert scenario.count and not scenario.cold and scenario.source == "2mp"
            assert scenario.seconds(QUICK) == QUICK.seconds  # each burst bounded by the row's time

    def test_burst_setups_before_and_after(self):
        setups = {s.name: s for s in self.by_key("shared-renders").setups}
        assert (setups["none"].shared, setups["none"].workers) == ("none", 2)
        assert (setups["disk"].shared, setups["disk"].workers) == ("disk", 2)
        assert (setups["redis"].shared, setups["redis"].nodes) == ("redis", 2)
        assert self.by_key("shared-renders").needs_redis

    def test_shared_hit_turns_the_memory_tier_off(self):
        for key, shared in (("shared-hit-disk", "disk"), ("shared-hit-redis", "redis")):
            scenario = self.by_key(key)
            assert scenario.request == "hit" and scenario.shared == shared
            assert scenario.memory_bytes == 1 and not scenario.cold
        assert not self.by_key("shared-hit-disk").needs_redis

    def test_everything_else_runs_on_the_disk_tier(self):
        assert {s.shared for s in SCENARIOS if not s.key.startswith("shared-hit")} == {"disk"}
        assert self.by_key("memory").memory_bytes == 8 * 1024 * 1024
