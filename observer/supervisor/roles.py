"""Roles: which of the configured programs this host's supervisor runs.

``[supervisor] role`` (or ``--role``) is ``all`` (the default), ``store`` (the writer and the
jobs beside the database) or ``collectors``; `ProgramSettings.host_role` says where each
program belongs. A dependency on another host's program (a collectors' worker on the writer)
is met once the writer acknowledges an event this supervisor sent since its start
(`RemoteDependency`): the link, the CURVE handshake and the writer's commits at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Literal

from observer.supervisor.program import Program
from observer.supervisor.settings import ProgramSettings

__all__ = [
    "ACK_POLL_S",
    "RemoteDependency",
    "Role",
    "connect",
    "elsewhere",
    "runs_here",
    "supervisor_source",
]

Role = Literal["all", "store", "collectors"]
ACK_POLL_S = 0.2  # how often a remote dependency looks at the supervisor's acknowledgements


def supervisor_source(role: Role, host: str = "") -> str:
    """The supervisor's own source on the bus: one per host, so that two hosts' never mix.

    Without a host name, one per role (one store and one collectors host); with one,
    ``supervisor``, which the producer qualifies: ``supervisor@c2`` (`observer.cluster.hosts`).
    """
    if host:
        return "supervisor"
    return "supervisor_collectors" if role == "collectors" else "supervisor"


def runs_here(program: ProgramSettings, role: Role) -> bool:
    """True if a host of ``role`` runs ``program`` (enabled, and of that role or all)."""
    return program.enabled and role in ("all", program.host_role)


def elsewhere(programs: Mapping[str, ProgramSettings], role: Role) -> dict[str, str]:
    """The enabled programs this host leaves to others: name -> their role."""
    return {
        name: p.host_role for name, p in programs.items() if p.enabled and not runs_here(p, role)
    }


class RemoteDependency:
    """A program on another host, met once the writer acknowledges this host's events.

    ``acked`` reads the supervisor's producer: the highest seq the writer committed. It is
    sampled when this is made; any later acknowledgement is the writer answering now (an
    outbox left by an earlier run, or this supervisor's first phase event).
    """

    def __init__(self, name: str, acked: Callable[[], int]) -> None:
        self.name = name
        self.running = asyncio.Event()
        self._acked = acked
        self._start = acked()

    async def follow(self) -> None:
        """Set ``running`` when the writer has acknowledged something new; then return."""
        while self._acked() <= self._start:
            await asyncio.sleep(ACK_POLL_S)
        self.running.set()


def connect(programs: Mapping[str, Program], acked: Callable[[], int]) -> list[RemoteDependency]:
    """Give each program its dependencies: here, the programs; elsewhere, `RemoteDependency`.

    Returns the remote ones, whose `RemoteDependency.follow` the supervisor runs.
    """
    remote: dict[str, RemoteDependency] = {}
    for program in programs.values():
        needs: list[Program | RemoteDependency] = []
        for name in program.settings.depends_on:
            if name in programs:
                needs.append(programs[name])
            else:
                if name not in remote:
                    remote[name] = RemoteDependency(name, acked)
                needs.append(remote[name])
        program.depend_on(needs)
    return list(remote.values())
