"""Reading a Prometheus exposition in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of `text`, by (name, sorted labels)."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(found: dict, name: str, **labels: str) -> float:
    """One sample of `samples(...)`, 0 when absent."""
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def service_state(text: str) -> dict[str, float]:
    """The memory tier's size and the renders in flight, from the exposition `text` (the
    counters /healthz does not show)."""
    found = samples(text)
    return {
        "cache_bytes": value(found, "thumbserver_cache_bytes", tier="memory"),
        "cache_entries": value(found, "thumbserver_cache_entries", tier="memory"),
        "in_flight": value(found, "thumbserver_renders_in_flight"),
    }
