"""``observer track-b run``: the ``track_b`` session worker (context sync, slots, streams).

``run`` is started by the supervisor before full operation; exits 0 on SIGTERM, 1 when the
bus fails, 2 on bad configuration. Its database, KIS and WebSocket code loads after READY,
so that a restart is quick. ``slots pin|unpin CODE...`` / ``slots list [--json]``: the
operator's pins (`workers.track_b.pins`) and the slots of the last evaluation, with unplaced
pins and barred symbols; exit 1 when refused (another shard's code) or no slots shown, 2 on
bad configuration or a data folder no Track B has used. ``observer ctl slots ...`` is an
alias, remote with ``--endpoint`` (`observer.supervisor.commands.slots`).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from observer.calendar.phases import KST
from observer.cli.support import start_worker
from observer.cluster.shards import Shard
from observer.config.load import load_settings
from observer.config.tree import Settings
from observer.errors import ConfigError
from workers.track_b import SOURCE
from workers.track_b.pins import pins_path, read_pins, slots_path, used_by_track_b, write_pins

__all__ = ["app", "slots_app"]

app = typer.Typer(no_args_is_help=True, help="Track B: real-time slots chosen by triggers.")
slots_app = typer.Typer(no_args_is_help=True, help="Track B's slots: pins and what is held.")
app.add_typer(slots_app, name="slots")
JsonOpt = Annotated[bool, typer.Option("--json", help="print the reply as JSON")]
PROGRAM = "observer track-b"


@app.callback()
def _group() -> None:
    """Keep ``run`` a subcommand (typer collapses a one-command app)."""


@app.command()
def run(
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
) -> None:
    """Run Track B until SIGTERM (the supervisor's ``track_b`` program)."""
    worker = start_worker("observer track-b", SOURCE, config, kis=True)
    # deferred: its work (WebSocket, SQLAlchemy, ZeroMQ: about 0.7 s) after READY (test_startup)
    from workers.track_b.worker import TrackB

    # What an earlier instance left (its slots, its open alerts) is read once the writer has
    # stored its last events: at the start, or during the streaming (`TrackB._day`).
    async def day(stop: asyncio.Event) -> None:
        await TrackB(worker.settings, worker.clock, worker.producer, worker.notifier, stop).run()
        await stop.wait()  # the day is done: idle until the supervisor stops us

    worker.run(day)


class _Target:
    data_dir: Path | None = None
    config: Path | None = None
    as_json = False

    def settings(self) -> Settings:
        """The configuration (``--config``, or the default one)."""
        try:
            return load_settings(self.config)
        except ConfigError as exc:
            _exit(f"{PROGRAM}: {exc}", 2)

    def folder(self) -> Path:
        """The data folder: ``--data-dir``, or the configuration's."""
        if self.data_dir is None:
            self.data_dir = Path(self.settings().paths.data_dir)
        return self.data_dir


_target = _Target()


def _exit(message: str, code: int) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@slots_app.callback()
def _slots_options(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="data folder (default: the configuration's)")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="observer.toml")] = None,
    as_json: JsonOpt = False,
) -> None:
    _target.data_dir, _target.config, _target.as_json = data_dir, config, as_json


def _refuse_other_shards(codes: list[str]) -> None:
    """Exit 1 if a code is another collectors host's to watch (``[track_b] shard``)."""
    settings = _target.settings()
    shard = Shard.parse(settings.track_b.shard)
    others = sorted(c for c in set(codes) if not shard.owns(c))
    if others:
        here = f"host {settings.supervisor.host or '(unnamed)'}, shard {shard}"
        owners = ", ".join(f'{c} to shard "{shard.owner(c)}"' for c in others)
        _exit(
            f"{PROGRAM}: not pinned: this is {here}; the split gives {owners}: "
            "pin it on the collectors host whose [track_b] shard lists that one",
            1,
        )


def _refuse_unused_folder(folder: Path, add: bool) -> None:
    """Exit 2 if no Track B would read pins from ``folder`` (it never ran with it)."""
    if used_by_track_b(folder):
        return
    where = folder.absolute()
    message = (
        f"{PROGRAM}: not {'pinned' if add else 'unpinned'}: no Track B or supervisor has run "
        f"with the data folder {where} (no track_b/slots.json, no run folder)"
    )
    if folder.is_absolute():
        message += (
            ": give the data folder of the supervisor that runs Track B "
            "(--data-dir, or [paths] data_dir)"
        )
    else:
        message += (
            f"; data_dir {str(folder)!r} is relative to the folder this runs in: run it from "
            "the folder the supervisor runs in, or set an absolute data_dir"
        )
    _exit(message, 2)


def _pins_changed(codes: list[str], add: bool) -> None:
    if add:
        _refuse_other_shards(codes)
    folder = _target.folder()
    _refuse_unused_folder(folder, add)
    try:
        pins = read_pins(folder)
        write_pins(folder, pins | set(codes) if add else pins - set(codes))
    except ConfigError as exc:
        _exit(f"{PROGRAM}: {exc}", 1)
    pins = read_pins(folder)
    typer.echo(f"pinned: {', '.join(sorted(pins)) or 'none'} ({pins_path(folder).absolute()})")
    if add:
        _say_beyond_slots(len(pins))


def _say_beyond_slots(pinned: int) -> None:
    """Name the pins that may not all hold a slot: more than Track B's registrations take.

    A Nextrade name takes the most registrations the policy gives a symbol; the others fewer.
    """
    # Imported here: the policy reads the KIS stack, which the worker loads once ready.
    from workers.track_b.registrations import TRADE_FEEDS, RegistrationPolicy

    settings = _target.settings()
    config = settings.track_b
    feeds = config.feeds
    widest = RegistrationPolicy(
        TRADE_FEEDS[feeds.nextrade], feeds.regular, paper=settings.kis.paper
    ).widest
    accounts, per = len(settings.kis.accounts), settings.kis.stream.max_registrations
    sure = accounts * per // widest
    if pinned > sure:
        typer.echo(
            f"{pinned - sure} of the {pinned} pins may wait for a slot: Track B holds "
            f"{accounts * per} registrations ({accounts} account{'s' * (accounts != 1)} x "
            f"{per}), up to {widest} a symbol; '{PROGRAM} slots list' shows which hold one"
        )


@slots_app.command()
def pin(codes: list[str]) -> None:
    """Pin symbols: each gets a slot at Track B's next evaluation, and keeps it."""
    _pins_changed(codes, add=True)


@slots_app.command()
def unpin(codes: list[str]) -> None:
    """Unpin symbols: their slots go back to the triggers."""
    _pins_changed(codes, add=False)


@slots_app.command("list")
def list_slots(as_json: JsonOpt = False) -> None:
    """The slots as of Track B's last evaluation (exit 1 if it has not shown any)."""
    path = slots_path(_target.folder())
    try:
        shown = json.loads(path.read_bytes())
    except FileNotFoundError:
        _exit(f"{PROGRAM}: Track B has not shown its slots (is it running?)", 1)
    except (OSError, ValueError, RecursionError) as exc:  # torn: rewritten at each evaluation
        again = "Track B writes it again at its next evaluation"
        _exit(f"{PROGRAM}: {path} does not read ({exc}); {again}", 1)
    if as_json or _target.as_json:
        typer.echo(json.dumps(shown))
        return
    for row in shown["slots"]:
        typer.echo(
            f"{row['account']:<12} {row['slot']:>3}  {row['symbol']}  {row['trigger']:<16} "
            f"{row['score']:>7.2f}"
            + (f"  {', '.join(row['feeds'])}" if row.get("feeds") else "")
            + ("  pinned" if row["pinned"] else "")
            + (f"  ({row['state']})" if row.get("state") else "")
        )
    for row in shown.get("aside", []):  # no slot: an auction's expected matches, the VI feed
        labels = ", ".join(row["feeds"])
        purpose = row.get("for", "auction")
        typer.echo(f"{row['account']:<12} {'-':>3}  {row['symbol']}  {purpose:<16} {labels}")
    for pin in shown.get("unplaced_pins", []):  # more pins than slots, a refused pin
        typer.echo(f"{'no slot':<12} {'':>3}  {pin['symbol']}  pinned: {pin['reason']}")
    for closed in shown.get("closed", []):
        typer.echo(f"{closed['account']:<12} {closed['slot']:>3}  closed (KIS counts it taken)")
    for bar in shown.get("barred", []):
        until = "until it trades again"
        if bar["until_ns"]:
            until = f"until {datetime.fromtimestamp(bar['until_ns'] / 1e9, KST):%H:%M:%S}"
        typer.echo(f"{'barred':<12} {'':>3}  {bar['symbol']}  {bar['reason']}, {until}")
