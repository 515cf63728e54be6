"""Targets evaluated from rows, and the Markdown they are printed as."""

from report import MB, Count, Measurement, Memory, Report, evaluate


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
        assert goal(goals, "cold 24 MP ≥ 1.0× Pillow").met is False
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


def count(scenario, setup, renders, distinct=20, failed=0, inconsistent=0, before=None):
    return Count(scenario=scenario, setup=setup, label=setup, requests=120, distinct=distinct,
                 renders=renders, seconds=1.0, renders_before=before, failed=failed,
                 inconsistent=inconsistent)


class TestSharedTier:
    """Render counts must equal their targets exactly; shared-tier hit ratios are reported."""

    def test_one_render_per_thumbnail_is_met_and_two_is_not(self):
        goals = evaluate([], None, [count("shared-renders", "disk", 20),
                                    count("shared-renders", "redis", 21)])
        disk, redis = goal(goals, "renders per distinct thumbnail, 2 workers, disk"), \
            goal(goals, "renders per distinct thumbnail, 2 nodes")
        assert (disk.value, disk.met, disk.shown) == (1.0, True, "1.00")
        assert (redis.value, redis.met) == (1.05, False)

    def test_fewer_renders_than_thumbnails_is_not_one_per_thumbnail(self):
        goals = evaluate([], None, [count("shared-renders", "disk", 19)])
        assert goal(goals, "renders per distinct thumbnail, 2 workers, disk").met is False

    def test_before_row_is_reported_not_judged(self):
        goals = evaluate([], None, [count("shared-renders", "none", 44)])
        before = goal(goals, "renders per distinct thumbnail, 2 workers, cache.shared none")
        assert (before.value, before.met, before.verdict) == (2.2, None, "reported")

    def test_restart_must_render_nothing(self):
        goals = evaluate([], None, [count("restart", "disk", 0, before=20), count("restart", "redis", 3)])
        disk, redis = goal(goals, "after a restart, renders of thumbnails served before (disk)"), \
            goal(goals, "after a restart, renders of thumbnails served before (Redis)")
        assert disk.met is True and disk.shown == "0 renders" and "first life: 20" in disk.detail
        assert redis.met is False

    def test_failed_requests_spoil_a_count(self):
        goals = evaluate([], None, [count("restart", "disk", 0, failed=20),
                                    count("shared-renders", "disk", 20, inconsistent=1)])
        restart = goal(goals, "after a restart, renders of thumbnails served before (disk)")
        assert restart.met is False and "20 of 120 requests failed" in restart.detail
        assert goal(goals, "renders per distinct thumbnail, 2 workers, disk").met is False

    def test_missing_setup_is_not_applicable(self):
        assert goal(evaluate([], None, []), "after a restart").verdict == "n/a"

    def test_shared_hit_against_memory_hit_and_render(self):
        rows = [row("hit", "ours", 30000), row("shared-hit-disk", "ours", 15000),
                row("shared-hit-redis", "ours", 6000), row("cold-2mp", "ours", 120)]
        goals = evaluate(rows, None)
        assert goal(goals, "shared-tier hit (disk) ÷ memory hit").value == 0.5
        assert goal(goals, "shared-tier hit (Redis) ÷ memory hit").verdict == "reported"
        assert goal(goals, "shared-tier hit (Redis) ÷ render").value == 50

    def test_srcset_goal(self):
        goals = evaluate([row("srcset", "ours", 75), row("srcset", "pillow", 25)], None)
        assert goal(goals, "srcset family ≥ 2.5×").value == 3.0
        assert goal(goals, "srcset family ≥ 2.5×").met is True

    def test_memory_bound_counts_intermediates(self):
        memory = Memory(process_rss=200 * MB, cache_bytes=8 * MB, cache_max_bytes=8 * MB,
                        allowance=150 * MB, intermediate_bytes=64 * MB)
        assert goal(evaluate([], memory), "peak RSS").met is True

    def test_memory_goal_names_the_shared_tier(self):
        memory = Memory(process_rss=160 * MB, cache_bytes=8 * MB, cache_max_bytes=8 * MB,
                        allowance=150 * MB, shared="disk")
        assert "cache.shared disk" in goal(evaluate([], memory), "peak RSS").detail


class TestMarkdown:
    """The printed report names failures and verdicts."""

    def test_failed_requests_are_called_out(self):
        report = Report(machine={"date": "d"}, settings={}, versions={}, titles={},
                        rows=[row("hit", "ours", 100, failed=7), row("hit", "nginx", 1000)])
        text = report.markdown()
        assert "**7 of 1000 requests failed**" in text
        assert "| hit ≥ 0.4× nginx (same bytes) | 0.10× | NOT met |" in text
        hit_goal = next(g for g in report.to_json()["goals"] if g["text"].startswith("hit ≥ 0.4× nginx"))
        assert hit_goal["met"] is False

    def test_render_counts_get_their_table(self):
        report = Report(machine={}, settings={}, versions={}, titles={"restart": "restart"},
                        counts=[count("restart", "disk", 0, before=20)])
        text = report.markdown()
        assert "## Render counts" in text
        assert "| restart | disk | 120 | 20 | 0 | 0.00 |" in text
        assert report.to_json()["counts"][0]["per_distinct"] == 0

    def test_no_render_counts_no_table(self):
        report = Report(machine={}, settings={}, versions={}, titles={}, rows=[row("hit", "ours", 1)])
        assert "Render counts" not in report.markdown()
