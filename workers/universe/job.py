"""The ``universe`` job's work once READY and the folder is held: the day's universe, once.

`run_universe` finds the day's universe (its file, else the database's copy) or builds it
(`workers.universe.build`); a failed build reuses the newest earlier universe (critical
``universe_reused``), or, with none, raises `NoUniverse` after a critical
``universe_failed``. A reused universe gives way to a rerun's build that ends before the
day's warm-up, which resolves the day's ``universe_reused`` and ``universe_failed``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from bus.events import Alert, AlertResolved, UniverseSnapshot
from bus.producer import Producer
from observer.calendar.clock import Clock, now_utc
from observer.calendar.phases import KST
from observer.calendar.timeline import Timeline, timeline_from
from observer.calendar.trading import TradingCalendar
from observer.cli.support import open_alert_notices, open_alert_subjects
from observer.config.tree import Settings
from observer.db.queries import universe_stored
from observer.db.readers import reader_engine
from observer.errors import ObserverError, StoreError
from observer.kis.rate_alert import KIS_RATE_LIMITED
from observer.process.heartbeat import Heartbeat
from observer.process.state_files import read_state
from observer.runtime import alert_book, drained
from workers.universe import SOURCE
from workers.universe.build import Built, build_universe, shortfall, stale_masters
from workers.universe.snapshot import (
    UniverseFile,
    candidates_by_market,
    decode,
    earlier_snapshots,
    event_of,
    file_of,
    file_of_stored,
    kst,
    snapshot_path,
    write,
)

__all__ = [
    "FAILED",
    "MEMBERS_FAILED",
    "NXT_UNKNOWN",
    "REUSED",
    "NoUniverse",
    "build_day",
    "run_universe",
]

log = logging.getLogger(__name__)

REUSED = "universe_reused"  # critical: the day runs on an earlier universe
FAILED = "universe_failed"  # critical: no universe for the day at all
MEMBERS_FAILED = "universe_members_failed"  # warning: candidates left out, failed
NXT_UNKNOWN = "universe_nxt_unknown"  # warning: members whose Nextrade standing is not known
_NAMED = 10  # candidates an alert names; the rest are counted (all are in the file)


class NoUniverse(ObserverError):
    """The day's build failed and no earlier universe reads: Track A has none."""


def run_universe(
    settings: Settings, clock: Clock, day: date, producer: Producer, notifier: Heartbeat
) -> tuple[UniverseFile, str]:
    """Present, restored, built or reused: the day's universe, published once.

    A universe the day already has (its file, or what the database holds) stands: the day
    is never built again, and Track A's universe never changes under it. Except a reused
    one before the day's warm-up (Track A's start): a rerun then builds the day's own.
    """
    data_dir = Path(settings.paths.data_dir)
    path = snapshot_path(data_dir, day)
    timeline = timeline_from(settings.phases, settings.calendar)
    provisional = now_utc(clock) < _warmup(settings, day)  # a reused universe may give way
    # A file that does not read (a power cut) is set aside, alerted, and the day restored
    # from the database, else built again: never a failure at every run.
    outcome = f"the universe of {day} is restored from the database, else built again"
    found = read_state(path, decode, outcome, producer.send)
    stored = _stored(settings, day)
    if found is not None and not (provisional and found.metadata.reused_from):
        if stored is not None:
            return found, "present"
        producer.send(event_of(found, day))
        return found, "republished"
    if found is None and stored is not None:
        event, produced_ns = stored
        previous = timeline.calendar.previous_session(day)
        reused = "" if event.based_on == previous else _reused_day(timeline, event.based_on)
        found = file_of_stored(event, produced_ns, reused)
        if not (provisional and reused):
            write(path, found)
            message = f"the universe file of {day} was missing; rewritten from the database"
            _alert(producer, "warning", "universe_file_restored", message, day)
            return found, "restored"
    return _build_or_reuse(settings, clock, day, producer, notifier, found, stored is not None)


def _stored(settings: Settings, day: date) -> tuple[UniverseSnapshot, int] | None:
    """The day's universe as the database holds it, and when it was published; or None.

    A database that cannot be read (the store host down, seen from a collectors host) is
    None: the day is built from the masters and published through the outbox, as ever;
    only a lost file's restore from the database waits for it.
    """
    try:
        engine = reader_engine(settings.database, "universe")
        try:
            with engine.connect() as conn:
                return universe_stored(conn, day)
        finally:
            engine.dispose()
    except (SQLAlchemyError, StoreError) as exc:
        log.warning("the database does not say whether %s has a universe (%s)", day, exc)
        return None


def _progress(notifier: Heartbeat) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress callback (a rich bar on a terminal) and what ends it."""
    if not sys.stdout.isatty():
        return (lambda done, total: notifier.beat()), lambda: None
    from rich.progress import Progress  # a terminal's alone: not loaded under the supervisor

    bar = Progress()
    bar.start()
    task = bar.add_task("daily charts", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)
        notifier.beat()

    return update, bar.stop


def build_day(
    settings: Settings, clock: Clock, day: date, producer: Producer, notifier: Heartbeat
) -> Built:
    """The day's universe built from the masters; `ObserverError` when it must not stand."""
    calendar = TradingCalendar(settings.calendar.extra_closed, settings.calendar.extra_open)
    earlier = _earlier(Path(settings.paths.data_dir), day, producer)
    before = candidates_by_market(earlier) if earlier is not None else {}
    warmup_ns = int(_warmup(settings, day).timestamp()) * 10**9
    progress, done = _progress(notifier)
    rates = alert_book(producer)
    rates.take_over_when_read(lambda: open_alert_notices(settings, SOURCE, [KIS_RATE_LIMITED]))
    try:
        built = asyncio.run(
            build_universe(
                settings,
                clock,
                calendar,
                day,
                progress,
                before=before,
                retry_until_ns=warmup_ns,
                alerts=producer.send,
                rates=rates,
            )
        )
    finally:
        done()
    reason = shortfall(built, settings.universe)
    if reason is not None:
        raise ObserverError(reason)
    return built


def _earlier(data_dir: Path, day: date, producer: Producer) -> UniverseFile | None:
    """The newest universe of a day before ``day`` that reads: the baseline, and a reuse.

    Each newer one that does not read is set aside, alerted (`observer.process.state_files`). None
    (the first universe, or none reads) leaves only the check that each market has
    candidates at all, and nothing to reuse.
    """
    outcome = "an older universe serves in its place, if one reads"
    for path in earlier_snapshots(data_dir, day):
        found = read_state(path, decode, outcome, producer.send)
        if found is not None:
            return found
    return None


def _alert(
    producer: Producer, severity: str, code: str, message: str, day: date, subject: str = ""
) -> None:
    context = {"day": day.isoformat()}
    producer.send(
        Alert(severity=severity, code=code, message=message, context=context, subject=subject)  # type: ignore[arg-type]
    )


class _TooLate(ObserverError):
    """The day's own universe, built once Track A had started on the reused one."""


def _warmup(settings: Settings, day: date) -> datetime:
    """When the day's warm-up (Track A's start) begins."""
    return timeline_from(settings.phases, settings.calendar).schedule.starts(day)[0][0]


def _reused_day(timeline: Timeline, based_on: date) -> str:
    """The day of the universe a stored reuse copied: the session after its basis."""
    return timeline.calendar.next_session(based_on).strftime("%Y%m%d")


def _build_or_reuse(
    settings: Settings,
    clock: Clock,
    day: date,
    producer: Producer,
    notifier: Heartbeat,
    reused: UniverseFile | None,
    published: bool,
) -> tuple[UniverseFile, str]:
    """Build the day's universe; on failure reuse the newest earlier one (or keep ``reused``).

    ``reused`` is the day's universe reused earlier, which a successful build replaces if
    it ends before the warm-up (a build still running then keeps it: Track A has started
    on it); ``published``: the database holds a universe of the day.
    """
    data_dir = Path(settings.paths.data_dir)
    path = snapshot_path(data_dir, day)
    try:
        built = build_day(settings, clock, day, producer, notifier)
        universe = file_of(built, settings.universe.min_prev_close, clock.now_ns())
        outcome = "built"
        finished = now_utc(clock)
        if reused is not None and finished >= _warmup(settings, day):
            at = finished.astimezone(KST)
            raise _TooLate(f"built only at {at:%H:%M:%S} KST, once the warm-up had begun")
    except ObserverError as exc:
        if reused is not None:
            if not path.exists():  # the database's copy of it
                write(path, reused)
            if not published:
                producer.send(event_of(reused, day))
            since = reused.metadata.reused_from
            message = f"universe for {day} failed again ({exc}); still reusing {since}"
            _alert(producer, "critical", REUSED, message, day, day.isoformat())
            return reused, "reused"
        old = _earlier(data_dir, day, producer)
        if old is None:
            message = f"{exc}; no earlier universe"
            _alert(producer, "critical", FAILED, message, day, day.isoformat())
            drained(producer, notifier, 60.0)
            raise NoUniverse(f"{exc}; no earlier universe to reuse") from exc
        universe = msgspec.structs.replace(
            old,
            metadata=msgspec.structs.replace(
                old.metadata, date=day.strftime("%Y%m%d"), reused_from=old.metadata.date
            ),
        )
        _alert(
            producer,
            "critical",
            REUSED,
            f"universe for {day} failed ({exc}); reusing {old.metadata.date} until a rerun "
            "before the warm-up builds the day's own",
            day,
            day.isoformat(),
        )
        outcome = "reused"
    else:
        _masters_alert(settings, built, day, producer)
        members_failed_alert(built, day, producer)
        nxt_unknown_alert(built, day, producer)
    write(path, universe, reused=reused)
    producer.send(event_of(universe, day))
    if outcome == "built":
        _resolve_failures(settings, clock, day, producer, universe)
    count = universe.metadata.symbol_count
    if count < settings.universe.min_symbols:
        minimum = settings.universe.min_symbols
        message = f"universe for {day} has {count} symbols (< {minimum})"
        _alert(producer, "warning", "universe_small", message, day)
    return universe, outcome


def _masters_alert(settings: Settings, built: Built, day: date, producer: Producer) -> None:
    """A warning when a master the build read predates the previous session's close."""
    timeline = timeline_from(settings.phases, settings.calendar)
    bound, stale = stale_masters(built.masters_installed, timeline, day)
    if stale:
        installed = ", ".join(f"{m} {kst(built.masters_installed[m])}" for m in stale)
        message = (
            f"universe for {day} read masters installed before the previous session closed "
            f"({bound:%Y-%m-%d %H:%M} KST): {installed}; halts and 관리종목 may be a day old"
        )
        _alert(producer, "warning", "universe_master_stale", message, day)


def members_failed_alert(built: Built, day: date, producer: Producer) -> None:
    """A warning naming the candidates left out: their daily chart failed twice, or not read.

    A candidate whose master record is malformed is never asked (`Built.malformed`). Within
    ``max_failed_pct`` they do not stop the build, but any of them may be one of the largest
    stocks: Track A does without it all day, which must not go unsaid.
    """
    if not built.failed:
        return
    codes = sorted(built.failed)
    named = ", ".join(codes[:_NAMED]) + (
        f" and {len(codes) - _NAMED} more" if len(codes) > _NAMED else ""
    )
    asked = "twice" if built.retried else "once (no time left for a second try)"
    cause = f"whose daily chart failed (asked {asked})"
    if built.malformed and len(built.malformed) == len(codes):
        cause = "whose master record is malformed"
    elif built.malformed:
        cause += f" or whose master record is malformed ({len(built.malformed)})"
    message = (
        f"universe for {day} leaves out {len(codes)} candidates {cause}: "
        f"{named}; {codes[0]}: {built.failed[codes[0]]}"
    )
    _alert(producer, "warning", MEMBERS_FAILED, message, day)


def nxt_unknown_alert(built: Built, day: date, producer: Producer) -> None:
    """A warning naming the members whose Nextrade standing was asked and is not known.

    KIS keeps no history of the standing: a member missed this morning stays unknown for
    the day in the record (it decides where Nextrade's silence is expected). A paper
    account's build, which cannot ask, is said in the file and the log, not alerted daily.
    """
    if not built.nxt_unknown:
        return
    codes = sorted(built.nxt_unknown)
    named = ", ".join(codes[:_NAMED]) + (
        f" and {len(codes) - _NAMED} more" if len(codes) > _NAMED else ""
    )
    message = (
        f"universe for {day}: the Nextrade standing of {len(codes)} of {len(built.members)} "
        f"members is not known: {named}; {codes[0]}: {built.nxt_unknown[codes[0]]}"
    )
    _alert(producer, "warning", NXT_UNKNOWN, message, day)


def _resolve_failures(
    settings: Settings, clock: Clock, day: date, producer: Producer, universe: UniverseFile
) -> None:
    """End the day's open ``universe_reused`` / ``universe_failed``: it has its own universe.

    Raised by an earlier run (the 06:10 one, before this 07:00 rerun), they would otherwise
    stay open and be reminded every half hour for a condition that is over. Their subject is
    the day: a build of another day (an operator's ``--date``) leaves them open, since the
    day they name still runs on an earlier universe. Those raised before alerts named their
    day (subject "") are ended by a build of today's. Only open ones are resolved (a
    resolution of nothing would reach every channel); a database that cannot say counts as
    open.
    """
    count = universe.metadata.symbol_count
    today = now_utc(clock).astimezone(KST).date()
    ours = {day.isoformat()} | ({""} if day == today else set())
    message = f"universe for {day} built: {count} symbols, the day's own"
    for code in (REUSED, FAILED):
        subjects = open_alert_subjects(settings, SOURCE, code)
        for subject in sorted(ours if subjects is None else ours & subjects):
            producer.send(
                AlertResolved(code=code, subject=subject, severity="critical", message=message)
            )
