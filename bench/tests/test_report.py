"""Targets evaluated from rows, and the Markdown they are printed as."""

from report import MB, Measurement, Memory, Report, evaluate


def row(scenario, subject, rate, failed=0, foreign_cpu=0.0):
    return Measurement(scenario=scenario, subject=subject, label=subject, concurrency=4,
                       rate=rate, p50_ms=1.0, p99_ms=2.0, peak_rss=50 * MB, process_rss=50 * MB,
                       requests=int(rate * 10), failed=failed, foreign_cpu=foreign_cpu)


def goal(goals, start):
    return next(g for g in goals if g.text.startswith(start))


class TestEvaluate:
    """Each target is a ratio of two rows, or the memory limit."""

    def test_ratio_met_and_missed(self):
        goals = evaluate([row("cold-24mp", "ours", 27), row("cold-24mp", "pillow", 30),
                          row("cold-24mp", "thumbor", 28)], None)
        assert goal(goals, "cold 24 MP ≥ 0.9× Pillow").met is True
        assert goal(goals, "cold 24 MP ≥ 1.0× thumbor").met is False

    def test_disturbed_row_is_called_out(self):
        rows = [row("original", "ours", 600, foreign_cpu=0.4), row("original", "nginx", 1300)]
        goals = evaluate(rows, None)
        assert "disturbed" in goal(goals, "original").detail

    def test_missing_peer_is_not_applicable(self):
        assert goal(evaluate([row("hit", "ours", 5000)], None), "hit").verdict == "n/a"

    def test_revalidation_compares_with_our_hit(self):
        goals = evaluate([row("hit", "ours", 100), row("revalidation", "ours", 150)], None)
        assert goal(goals, "revalidation").value == 1.5

    def test_memory_limit_is_max_bytes_plus_allowance(self):
        memory = Memory(process_rss=200 * MB, cache_bytes=16 * MB, cache_max_bytes=16 * MB,
                        allowance=150 * MB)
        assert goal(evaluate([], memory), "peak RSS").met is False
        within = Memory(process_rss=160 * MB, cache_bytes=16 * MB, cache_max_bytes=16 * MB,
                        allowance=150 * MB)
        assert goal(evaluate([], within), "peak RSS").met is True


class TestMarkdown:
    """The printed report names failures and verdicts."""

    def test_failed_requests_are_called_out(self):
        report = Report(machine={"date": "d"}, settings={}, versions={}, titles={},
                        rows=[row("hit", "ours", 100, failed=7), row("hit", "nginx", 1000)])
        text = report.markdown()
        assert "**7 of 1000 requests failed**" in text
        assert "| hit ≥ 0.4× nginx (same bytes) | 0.10× | NOT met |" in text
        assert report.to_json()["goals"][4]["met"] is False
