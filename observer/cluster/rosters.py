"""Host rosters: what each host runs, and two hosts found doing the same work.

Some work must be done by exactly one collectors host, and nothing stops two configurations from
both enabling it (`overlaps` says what and why). Each supervisor publishes a
`bus.events.HostRoster` at its start and each day; the store host's supervisor reads those
published within `ROSTER_WINDOW_S` and raises one critical alert per overlap, resolved when it is
gone (`observer.supervisor.rosters`). App keys never leave the host: a roster carries a hash
(`fingerprint`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bus.events import HostRoster, RosterAccount
from observer.cluster.shards import Shard
from observer.config.tree import Settings
from observer.errors import ConfigError
from observer.kis.credentials import account_credentials

if TYPE_CHECKING:
    from observer.db.roster_queries import StoredRoster

__all__ = [
    "OVERLAP_CODES",
    "ROSTER_WINDOW_S",
    "WHOLE_MARKET_PROGRAMS",
    "Overlap",
    "fingerprint",
    "overlaps",
    "roster_of",
]

log = logging.getLogger(__name__)

# The programs that snapshot the whole market (every listed symbol, every master file, every
# ETF), by their names in ``[programs]``: each belongs on one collectors host. Track B and gap
# recovery are not here: each host streams and repairs its own symbols.
WHOLE_MARKET_PROGRAMS = frozenset(
    {
        "track_a",  # REST snapshots of the whole universe every cycle
        "universe",  # the day's universe
        "master_file",  # the KIS symbol masters
        "enrich",  # sector enrichment of every instrument
        "etf_list",  # the KRX ETF list
        "etf_daily",  # price, NAV, premium and AUM of every ETF
        "etf_holdings",  # every ETF's constituents
        "etf_backfill",  # the weekly repair of revised NAVs
    }
)

# Rosters older than this are of hosts that stopped (or were renamed): they no longer count.
# A supervisor publishes one each day, so a running host's is never older than a day.
ROSTER_WINDOW_S = 36 * 3600.0

PROGRAM_CODE = "whole_market_on_two_hosts"
ALIAS_CODE = "account_on_two_hosts"
APP_KEY_CODE = "app_key_on_two_hosts"
SHARDS_CODE = "track_b_shards"  # a shard on two hosts, on none, or splits that differ
OVERLAP_CODES = frozenset({PROGRAM_CODE, ALIAS_CODE, APP_KEY_CODE, SHARDS_CODE})

_PERSON = b"observer-acct"  # personalises the hash: a fingerprint is of no use elsewhere


def fingerprint(app_key: str) -> str:
    """A short hash of an app key: equal for equal keys, and the key cannot be read back."""
    return hashlib.blake2b(app_key.encode(), digest_size=8, person=_PERSON).hexdigest()


def roster_of(settings: Settings, role: str, programs: Iterable[str]) -> HostRoster:
    """The roster of a host of ``role`` running ``programs`` (their names).

    A store host calls no KIS: it names no account. An account whose credentials cannot be
    read is named without a fingerprint (logged: its workers fail on the same credentials).
    """
    names = set(programs)
    whole = tuple(sorted(names & WHOLE_MARKET_PROGRAMS))
    accounts: list[RosterAccount] = []
    if role != "store":
        for account in settings.kis.accounts:
            try:
                key = account_credentials(settings.kis, account.alias).app_key.reveal()
                print_ = fingerprint(key)
            except ConfigError as exc:
                log.warning("no fingerprint for account %s in the roster: %s", account.alias, exc)
                print_ = ""
            accounts.append(RosterAccount(alias=account.alias, fingerprint=print_))
    return HostRoster(
        host=settings.supervisor.host,
        role=role,
        whole_market=whole,
        accounts=tuple(accounts),
        track_b_shard=settings.track_b.shard if "track_b" in names else "",
    )


@dataclass(frozen=True, slots=True)
class Overlap:
    """Work or an account found on several hosts: one alert, known by ``(code, subject)``."""

    code: str
    subject: str  # the program, the alias, or the accounts sharing one key ("acct1@c1 ...")
    hosts: tuple[str, ...]
    message: str


def overlaps(rosters: Iterable[StoredRoster]) -> list[Overlap]:
    """The overlaps between ``rosters`` (one per host; a host never overlaps itself).

    A whole-market program (`WHOLE_MARKET_PROGRAMS`) on two hosts spends both budgets on the
    same rows; an account alias on two hosts mixes their rows; an app key (one account at KIS)
    on two hosts, under any aliases, doubles its rate use and fights for its one WebSocket
    session; Track B's shards must be dealt out whole (`_shard_overlaps`).
    """
    programs: dict[str, set[str]] = defaultdict(set)
    aliases: dict[str, set[str]] = defaultdict(set)
    keys: dict[str, set[tuple[str, str]]] = defaultdict(set)  # fingerprint -> (alias, host)
    for roster in rosters:
        for name in roster.whole_market:
            programs[name].add(roster.label)
        for alias, print_ in roster.accounts:
            aliases[alias].add(roster.label)
            if print_:  # unknown: nothing to compare
                keys[print_].add((alias, roster.label))
    found = [
        Overlap(
            PROGRAM_CODE,
            name,
            on,
            f"{name} is enabled on hosts {', '.join(on)}: it "
            "covers the whole market, so it belongs on one collectors host; disable it on "
            "all but one",
        )
        for name, on in _on_several(programs)
    ] + [
        Overlap(
            ALIAS_CODE,
            alias,
            on,
            f"account {alias} is configured on hosts "
            f"{', '.join(on)}: rows name the account, so each host needs accounts of its "
            "own aliases",
        )
        for alias, on in _on_several(aliases)
    ]
    for users in keys.values():
        hosts = {host for _, host in users}
        # One alias on several hosts is the alert above; this is one key under other names.
        if len(hosts) > 1 and len({alias for alias, _ in users}) > 1:
            named = " ".join(f"{alias}@{host}" for alias, host in sorted(users))
            message = (
                f"accounts {named} use the same app key on hosts {', '.join(sorted(hosts))}: "
                "one account's rate limit and its one WebSocket session are shared; give each "
                "host an account of its own"
            )
            found.append(Overlap(APP_KEY_CODE, named, tuple(sorted(hosts)), message))
    found += _shard_overlaps(rosters)
    return sorted(found, key=lambda o: (o.code, o.subject))


def _on_several(hosts_of: Mapping[str, set[str]]) -> list[tuple[str, tuple[str, ...]]]:
    """Each name found on two or more hosts, with those hosts, in order."""
    return [(name, tuple(sorted(on))) for name, on in sorted(hosts_of.items()) if len(on) > 1]


def _shard_overlaps(rosters: Iterable[StoredRoster]) -> list[Overlap]:
    """Track B's split between the hosts that run it: each shard on exactly one host.

    A shard on two hosts has its symbols streamed (and stored) twice; a shard on none has
    them never streamed; hosts splitting n ways for different n do both at once.
    """
    split: dict[str, Shard] = {}
    for roster in rosters:
        if not roster.track_b_shard:
            continue
        try:
            split[roster.label] = Shard.parse(roster.track_b_shard)
        except ValueError as exc:  # a roster from a host of another release
            log.warning("roster of %s: %s", roster.label, exc)
    hosts = tuple(sorted(split))
    counts = sorted({shard.count for shard in split.values()})
    if len(counts) > 1:
        ways = ", ".join(f"{host} {shard}" for host, shard in sorted(split.items()))
        message = (
            f"Track B's symbols are split different ways on hosts {ways}: some symbols are "
            "streamed on two hosts and some on none; give every host the same n"
        )
        return [Overlap(SHARDS_CODE, "split", hosts, message)]
    if not counts:
        return []
    (count,) = counts
    holders: dict[int, list[str]] = defaultdict(list)
    for host, shard in sorted(split.items()):
        for index in shard.indices:
            holders[index].append(host)
    found = []
    for index, on in sorted(holders.items()):
        if len(on) > 1:
            message = (
                f"Track B shard {index}/{count} is on hosts {', '.join(on)}: both stream its "
                "symbols and every tick of them is stored twice; give it to one host"
            )
            found.append(Overlap(SHARDS_CODE, f"shard {index}/{count}", tuple(on), message))
    unowned = [index for index in range(1, count + 1) if index not in holders]
    if unowned:
        listed = ",".join(map(str, unowned))
        message = (
            f"Track B shards {listed}/{count} are on none of hosts {', '.join(hosts)}: their "
            "symbols are never streamed; add them to a host's [track_b] shard"
        )
        found.append(Overlap(SHARDS_CODE, f"shards {listed}/{count} on no host", hosts, message))
    return found
