"""The free-space levels and the alerts that say when they change."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bus.events import Alert, AlertResolved
from observer.process.disk import DiskSettings, DiskWatch, Usage

MIB = 1024 * 1024
SETTINGS = DiskSettings(
    check_interval_s=10.0,
    warn_free_bytes=100 * MIB,
    warn_free_percent=0,
    critical_free_bytes=10 * MIB,
    critical_free_percent=0,
)


def test_percent_thresholds_apply_as_well_as_bytes() -> None:
    settings = DiskSettings(
        warn_free_bytes=0, warn_free_percent=5.0, critical_free_bytes=0, critical_free_percent=1.0
    )
    assert settings.level(Usage(1000, 60)) == "ok"
    assert settings.level(Usage(1000, 40)) == "warning"
    assert settings.level(Usage(1000, 9)) == "critical"
    assert settings.level(Usage(0, 0)) == "critical"  # nothing to write to


@given(st.lists(st.integers(0, 200), min_size=1, max_size=30))
def test_alerts_and_resolutions_always_match_the_current_level(frees_mib: list[int]) -> None:
    free = [0]
    now = [0.0]
    watch = DiskWatch(
        SETTINGS,
        {"database": Path("/db")},
        "writer",
        usage=lambda _: Usage(1000 * MIB, free[0]),
        monotonic=lambda: now[0],
    )
    open_codes: set[str] = set()
    for mib in frees_mib:
        free[0] = mib * MIB
        now[0] += 10.0
        for event in watch.check():
            assert isinstance(event, Alert | AlertResolved)
            assert event.subject == "writer:database"
            if isinstance(event, Alert):
                assert event.code not in open_codes  # once per crossing
                open_codes.add(event.code)
            else:
                open_codes.remove(event.code)
        level = SETTINGS.level(Usage(1000 * MIB, free[0]))
        expected = {
            "ok": set(),
            "warning": {"disk_low"},
            "critical": {"disk_low", "disk_critical"},
        }[level]
        assert open_codes == expected
        assert watch.critical == (level == "critical")


def test_the_volumes_are_measured_at_most_every_interval() -> None:
    calls: list[Path] = []
    now = [0.0]

    def usage(path: Path) -> Usage:
        calls.append(path)
        return Usage(1000 * MIB, 500 * MIB)

    watch = DiskWatch(SETTINGS, {"a": Path("/a")}, "p", usage=usage, monotonic=lambda: now[0])
    watch.check()
    now[0] = 9.9
    watch.check()
    assert len(calls) == 1
    now[0] = 10.0
    watch.check()
    assert len(calls) == 2


def test_a_volume_that_cannot_be_measured_keeps_its_level() -> None:
    def usage(path: Path) -> Usage:
        raise PermissionError(13, "denied")

    watch = DiskWatch(SETTINGS, {"a": Path("/a")}, "p", usage=usage)
    assert watch.check() == [] and watch.levels == {"a": "ok"}


def test_an_alert_only_volume_is_alerted_and_resolved_but_never_critical() -> None:
    """The writer's capture once stopped: its volume full is said, and pauses nothing."""
    free = {Path("/db"): 500 * MIB, Path("/cap"): 0}
    watch = DiskWatch(
        SETTINGS,
        {"database": Path("/db"), "capture": Path("/cap")},
        "writer",
        usage=lambda path: Usage(1000 * MIB, free[path]),
    )
    raised = watch.check(now=True)
    assert watch.critical
    watch.alert_only.add("capture")
    assert not watch.critical and watch.levels["capture"] == "critical"
    free[Path("/db")] = 0
    assert watch.check(now=True) and watch.critical  # the database's volume still counts
    free[Path("/db")] = free[Path("/cap")] = 500 * MIB
    resolved = [e for e in watch.check(now=True) if e.subject == "writer:capture"]
    assert {e.code for e in raised} == {e.code for e in resolved} == {"disk_low", "disk_critical"}
    assert not watch.critical
