"""The bus over tcp: CURVE keys, the writer's allow-list, sources bound to keys.

Key files and configuration are checked directly; the rest runs a real writer process on a
loopback tcp port with in-process producers and subscribers (one host: the two-host tests,
in network namespaces, are in ``test_multihost.py``).
"""

from __future__ import annotations

import re
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import zmq

from bus.curve import (
    ClientCurve,
    KeyPair,
    ServerCurve,
    generate_key_pair,
    load_key_pair,
    load_public_key,
)
from bus.endpoints import Endpoints
from bus.errors import BusError, KeyFileError
from bus.events import Alert
from bus.feed import FeedSubscriber
from bus.producer import Producer
from harness.loadgen import synthetic_tick
from observer.cluster.transport import bind_endpoints, bus_endpoints, client_curve, server_curve
from observer.config.load import load_settings
from observer.errors import ConfigError
from tests.support import ROOT, WriterProcess, assert_exactly_once, db_rows, free_port, wait_until

# ---------------------------------------------------------------- key files


def test_a_generated_pair_is_owner_only_and_never_shows_its_secret(tmp_path: Path) -> None:
    public_path, secret_path = generate_key_pair(tmp_path / "keys", "writer")
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    pair = load_key_pair(tmp_path / "keys", "writer")
    assert load_public_key(public_path) == pair.public
    assert "secret-key" not in public_path.read_text()
    assert pair.secret.decode() not in repr(pair)
    assert len(pair.public) == len(pair.secret) == 40
    # The files are ZeroMQ certificates: pyzmq's own reader agrees.
    assert zmq.auth.load_certificate(secret_path) == (pair.public, pair.secret)


def test_an_existing_pair_is_never_overwritten(tmp_path: Path) -> None:
    generate_key_pair(tmp_path, "a")
    before = (tmp_path / "a.key_secret").read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_pair(tmp_path, "a")
    assert (tmp_path / "a.key_secret").read_bytes() == before


def test_a_secret_others_may_read_is_refused_without_showing_it(tmp_path: Path) -> None:
    generate_key_pair(tmp_path, "a")
    secret = load_key_pair(tmp_path, "a").secret.decode()
    (tmp_path / "a.key_secret").chmod(0o640)
    with pytest.raises(KeyFileError, match="chmod 600") as caught:
        load_key_pair(tmp_path, "a")
    assert secret not in str(caught.value)


def test_missing_and_malformed_key_files_are_key_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="no CURVE key pair"):
        load_key_pair(tmp_path, "nobody")
    (tmp_path / "bad.key").write_text('curve\n    public-key = "short"\n')
    with pytest.raises(KeyFileError, match="malformed"):
        load_public_key(tmp_path / "bad.key")


def _replace_key(path: Path, part: str, key: str) -> None:
    """Put ``key`` in place of the ``part`` ("public" or "secret") key of a certificate."""
    lines = path.read_text().splitlines()
    path.write_text(
        "\n".join(f'    {part}-key = "{key}"' if f"{part}-key" in ln else ln for ln in lines) + "\n"
    )


@pytest.mark.parametrize("part", ["secret", "public"])
@pytest.mark.parametrize("bad", ["~" * 40, "#" * 40], ids=["not_z85", "z85_overflowing"])
def test_a_key_of_the_right_length_that_is_not_z85_is_refused_naming_the_file(
    tmp_path: Path, part: str, bad: str
) -> None:
    generate_key_pair(tmp_path, "a")
    secret = load_key_pair(tmp_path, "a").secret.decode()
    _replace_key(tmp_path / "a.key_secret", part, bad)
    with pytest.raises(KeyFileError) as caught:
        load_key_pair(tmp_path, "a")
    assert str(caught.value) == f"{tmp_path / 'a.key_secret'} holds a malformed CURVE key"
    assert secret not in str(caught.value)
    _replace_key(tmp_path / "a.key", "public", bad)
    with pytest.raises(KeyFileError) as caught:
        load_public_key(tmp_path / "a.key")
    assert str(caught.value) == f"{tmp_path / 'a.key'} holds a malformed CURVE key"


def test_a_pair_whose_public_part_is_not_its_secret_parts_is_refused(tmp_path: Path) -> None:
    generate_key_pair(tmp_path, "a")
    generate_key_pair(tmp_path, "b")
    secret = load_key_pair(tmp_path, "a").secret.decode()
    _replace_key(tmp_path / "a.key_secret", "public", load_public_key(tmp_path / "b.key").decode())
    with pytest.raises(KeyFileError, match="mismatched CURVE key pair") as caught:
        load_key_pair(tmp_path, "a")
    assert str(tmp_path / "a.key_secret") in str(caught.value)
    assert secret not in str(caught.value)


# ---------------------------------------------------------------- configuration


def write_config(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_plaintext_tcp_is_refused_when_the_configuration_is_loaded(tmp_path: Path) -> None:
    config = write_config(tmp_path / "o.toml", '[bus]\ningest_endpoint = "tcp://127.0.0.1:5555"\n')
    with pytest.raises(ConfigError, match="never plaintext"):
        load_settings(config)
    config = write_config(tmp_path / "o.toml", '[bus]\nfeed_endpoint = "tcp://127.0.0.1:5556"\n')
    with pytest.raises(ConfigError, match="never plaintext"):
        load_settings(config)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (
            'ingest_endpoint = "tcp://127.0.0.1:5555"',
            "bus.feed_endpoint must be tcp too when bus.ingest_endpoint is: the feed is the "
            "writer's, on its host (it is empty: ipc under the run directory)",
        ),
        (
            'ingest_endpoint = "tcp://127.0.0.1:5555"\nfeed_endpoint = "ipc:///tmp/feed.sock"',
            "bus.feed_endpoint must be tcp too when bus.ingest_endpoint is: the feed is the "
            "writer's, on its host (it is 'ipc:///tmp/feed.sock')",
        ),
        (
            'feed_endpoint = "tcp://127.0.0.1:5556"',
            "bus.ingest_endpoint must be tcp too when bus.feed_endpoint is: ingest is the "
            "writer's, on its host (it is empty: ipc under the run directory)",
        ),
    ],
    ids=["ingest_tcp_feed_empty", "ingest_tcp_feed_ipc", "feed_tcp_ingest_empty"],
)
def test_half_of_the_bus_over_tcp_is_refused_when_the_configuration_is_loaded(
    tmp_path: Path, lines: str, error: str
) -> None:
    """The feed over ipc on a collectors host is a socket nothing binds there: silence."""
    config = write_config(tmp_path / "o.toml", f'[bus]\n{lines}\n[bus.curve]\nkey = "a"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert error in str(caught.value)
    both = 'ingest_endpoint = "tcp://127.0.0.1:5555"\nfeed_endpoint = "tcp://127.0.0.1:5556"'
    config = write_config(tmp_path / "o.toml", f'[bus]\n{both}\n[bus.curve]\nkey = "a"\n')
    settings = load_settings(config)
    assert bus_endpoints(settings.bus, settings.paths.run).feed == "tcp://127.0.0.1:5556"


@pytest.mark.parametrize(
    "endpoint", ["tcp://127.0.0.1", "tcp://*:5555", "tcp://h:0", "tcp://h:70000", "udp://h:1"]
)
def test_a_malformed_endpoint_is_refused(tmp_path: Path, endpoint: str) -> None:
    config = write_config(
        tmp_path / "o.toml", f'[bus]\ningest_endpoint = "{endpoint}"\n[bus.curve]\nkey = "a"\n'
    )
    with pytest.raises(ConfigError, match="expected tcp://host:port"):
        load_settings(config)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ('ingest_bind = "tcp://127.0.0.1:5555"', "only for a tcp bus.ingest_endpoint"),
        ('feed_bind = "tcp://*:5556"', "only for a tcp bus.feed_endpoint"),
        ('ingest_endpoint = "tcp://h:5555"\ningest_bind = "127.0.0.1:5555"', "expected tcp://"),
        ('ingest_endpoint = "tcp://h:5555"\ningest_bind = "tcp://*:0"', "expected tcp://"),
        ('ingest_endpoint = "tcp://h:5555"\ningest_bind = "ipc:///tmp/x"', "expected tcp://"),
        ('feed_endpoint = "tcp://h:5556"\nfeed_bind = "tcp://10.0.0.2"', "expected tcp://"),
    ],
)
def test_a_bind_address_is_tcp_and_only_for_a_tcp_endpoint(
    tmp_path: Path, lines: str, error: str
) -> None:
    config = write_config(tmp_path / "o.toml", f'[bus]\n{lines}\n[bus.curve]\nkey = "a"\n')
    with pytest.raises(ConfigError, match=error):
        load_settings(config)


def test_bind_addresses_default_to_the_endpoints(tmp_path: Path) -> None:
    nat = write_config(
        tmp_path / "o.toml",
        '[bus]\ningest_endpoint = "tcp://observer.example.com:5701"\n'
        'feed_endpoint = "tcp://observer.example.com:5702"\n'
        'ingest_bind = "tcp://*:5701"\nfeed_bind = "tcp://10.0.0.2:15702"\n'
        '[bus.curve]\nkey = "a"\n',
    )
    settings = load_settings(nat)
    run = settings.paths.run
    assert bind_endpoints(settings.bus, run) == Endpoints("tcp://*:5701", "tcp://10.0.0.2:15702")
    assert bus_endpoints(settings.bus, run) == Endpoints(
        "tcp://observer.example.com:5701", "tcp://observer.example.com:5702"
    )
    plain = load_settings(write_config(tmp_path / "p.toml", f'[paths]\nrun_dir = "{tmp_path}"\n'))
    # ipc: the socket files themselves
    assert bind_endpoints(plain.bus, plain.paths.run) == bus_endpoints(plain.bus, plain.paths.run)


def test_the_bus_classes_refuse_tcp_without_keys(tmp_path: Path) -> None:
    with pytest.raises(BusError, match="no plaintext tcp"):
        Producer("p", "tcp://127.0.0.1:1", tmp_path / "ob")
    with pytest.raises(BusError, match="no plaintext tcp"):
        FeedSubscriber(zmq.Context.instance(), "tcp://127.0.0.1:1")


def test_a_missing_key_file_is_a_config_error_at_start(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "o.toml",
        f'[bus]\ningest_endpoint = "tcp://127.0.0.1:5555"\n'
        'feed_endpoint = "tcp://127.0.0.1:5556"\n'
        f'[bus.curve]\nkeys_dir = "{tmp_path}"\nkey = "collectors"\n'
        f'clients = {{ collectors = ["p*"] }}\n',
    )
    settings = load_settings(config)
    with pytest.raises(ConfigError, match=r"collectors\.key_secret"):
        client_curve(settings.bus)
    generate_key_pair(tmp_path, "collectors")
    with pytest.raises(ConfigError, match=r"writer\.key"):  # the writer's public key
        client_curve(settings.bus)
    generate_key_pair(tmp_path, "writer")
    assert client_curve(settings.bus) is not None
    server = server_curve(settings.bus)
    assert server is not None
    collectors = load_public_key(tmp_path / "collectors.key").decode()
    assert server.may_send(collectors, "p0") and not server.may_send(collectors, "writer")


# ---------------------------------------------------------------- a writer over tcp


class TcpBus:
    """A writer process on a loopback tcp port: ``collectors`` and ``twin`` may send as
    ``p*``; a stranger's key is not in the allow-list."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.keys = tmp_path / "keys"
        for name in ("writer", "collectors", "twin", "stranger"):
            generate_key_pair(self.keys, name)
        self.ingest = f"tcp://127.0.0.1:{free_port()}"
        self.feed = f"tcp://127.0.0.1:{free_port()}"
        self.writer = WriterProcess(
            tmp_path,
            url,
            extra=(
                f'[bus]\ningest_endpoint = "{self.ingest}"\nfeed_endpoint = "{self.feed}"\n'
                f'[bus.curve]\nkeys_dir = "{self.keys}"\nkey = "writer"\n'
                '[bus.curve.clients]\ncollectors = ["p*"]\ntwin = ["p*"]\n'
            ),
        )
        self.outboxes = tmp_path / "outbox"
        self.producers: list[Producer] = []

    def curve(self, name: str) -> ClientCurve:
        return ClientCurve(load_key_pair(self.keys, name), self.server_public)

    @property
    def server_public(self) -> bytes:
        return load_public_key(self.keys / "writer.key")

    def producer(self, source: str, key: str) -> Producer:
        producer = Producer(
            source,
            self.ingest,
            self.outboxes / key / source,  # each key stands for a host: its own outboxes
            ack_timeout_s=0.5,
            curve=self.curve(key),
        )
        self.producers.append(producer)
        return producer

    def close(self) -> None:
        for producer in self.producers:
            producer.close(drain_timeout=0)
        self.writer.kill()


@pytest.fixture
def tcp_bus(tmp_path: Path, sqlite_url: str) -> Iterator[TcpBus]:
    bus = TcpBus(tmp_path, sqlite_url)
    bus.writer.start()
    yield bus
    bus.close()


def alerts(url: str, code: str) -> list[tuple[str, str]]:
    return [
        (row[0], row[1])
        for row in db_rows(url, f"SELECT code, subject FROM alerts WHERE code = '{code}'")
    ]


def send_ticks(producer: Producer, count: int) -> None:
    for n in range(count):
        producer.send(synthetic_tick(n, 1_700_000_000_000_000_000 + n))


def test_an_allowed_key_delivers_exactly_once_and_follows_the_feed(
    tcp_bus: TcpBus, sqlite_url: str
) -> None:
    subscriber = FeedSubscriber(
        zmq.Context.instance(), tcp_bus.feed, ["trade_tick."], tcp_bus.curve("collectors")
    )
    producer = tcp_bus.producer("p0", "collectors")
    seen = 0

    def fed() -> bool:
        nonlocal seen
        send_ticks(producer, 1)  # until the subscription has reached the writer
        got = subscriber.recv(20)
        seen += len(got or [])
        return seen > 0

    wait_until(fed, 30, "a committed tick on the CURVE feed")
    send_ticks(producer, 999)
    assert producer.wait_acked(30)
    subscriber.close()
    assert_exactly_once(sqlite_url, {"p0": producer.last_seq})
    assert "refused" not in tcp_bus.writer.log.read_text()


def test_an_unknown_key_is_refused_logged_once_and_alerted(
    tcp_bus: TcpBus, sqlite_url: str
) -> None:
    intruder = tcp_bus.producer("p1", "stranger")
    send_ticks(intruder, 100)
    stranger = load_public_key(tcp_bus.keys / "stranger.key").decode()
    wait_until(lambda: alerts(sqlite_url, "bus_key_refused"), 30, "the refusal's alert")
    assert alerts(sqlite_url, "bus_key_refused") == [("bus_key_refused", stranger)]
    # Refused at the handshake: the writer never saw a frame, and never stored one.
    assert "p1" not in tcp_bus.writer.offsets()
    assert intruder.acked == 0
    # ZeroMQ retries the handshake; the log names the key once, never a secret.
    tcp_bus.writer.terminate()
    log = tcp_bus.writer.log.read_text()
    assert log.count(f"unknown public key {stranger}") == 1
    for name in ("writer", "collectors", "stranger"):
        assert load_key_pair(tcp_bus.keys, name).secret.decode() not in log
    refused = db_rows(sqlite_url, "SELECT count(*) FROM alerts WHERE code = 'bus_key_refused'")
    assert refused[0][0] == 1


def test_a_key_sending_as_another_source_is_refused_and_never_stored(
    tcp_bus: TcpBus, sqlite_url: str
) -> None:
    honest = tcp_bus.producer("p0", "collectors")
    impostor = tcp_bus.producer("supervisor", "collectors")  # allowed only as p*
    other = tcp_bus.producer("track_a", "collectors")
    send_ticks(impostor, 10)
    impostor.send(Alert(severity="critical", code="FAKE", message="forged"))
    send_ticks(other, 10)
    send_ticks(honest, 500)
    assert honest.wait_acked(30)
    wait_until(lambda: alerts(sqlite_url, "bus_source_not_allowed"), 30, "the refusal's alert")
    collectors = load_public_key(tcp_bus.keys / "collectors.key").decode()
    assert alerts(sqlite_url, "bus_source_not_allowed") == [("bus_source_not_allowed", collectors)]
    offsets = tcp_bus.writer.offsets()
    assert "supervisor" not in offsets and "track_a" not in offsets
    assert alerts(sqlite_url, "FAKE") == []
    assert impostor.acked == 0 and other.acked == 0
    # Two names refused, one alert for the key; every refused frame counted.
    wait_until(
        lambda: (
            "track_a" in tcp_bus.writer.log.read_text()
            or "supervisor" in tcp_bus.writer.log.read_text()
        ),
        30,
        "the refusal logged",
    )
    tcp_bus.writer.terminate()
    stopped = tcp_bus.writer.log.read_text().split("writer stopped:")[-1]
    assert int(stopped.split("refused_sources=")[1].split(">")[0]) >= 2
    assert_exactly_once(sqlite_url, {"p0": 500, "writer": 1})  # the writer's own alert


def _listening(pid: int) -> set[tuple[str, int]]:
    """The tcp addresses process ``pid`` listens on."""
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_behind_nat_the_writer_binds_its_bind_address_and_clients_use_the_endpoint(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Clients are told ``localhost`` (the "public" name); the writer binds 127.0.0.1."""
    keys = tmp_path / "keys"
    for name in ("writer", "collectors"):
        generate_key_pair(keys, name)
    ingest, feed = free_port(), free_port()
    writer = WriterProcess(
        tmp_path,
        sqlite_url,
        extra=(
            f'[bus]\ningest_endpoint = "tcp://localhost:{ingest}"\n'
            f'feed_endpoint = "tcp://localhost:{feed}"\n'
            f'ingest_bind = "tcp://127.0.0.1:{ingest}"\nfeed_bind = "tcp://127.0.0.1:{feed}"\n'
            f'[bus.curve]\nkeys_dir = "{keys}"\nkey = "writer"\n'
            '[bus.curve.clients]\ncollectors = ["p*"]\n'
        ),
    ).start()
    try:
        assert writer.proc is not None
        assert _listening(writer.proc.pid) == {("127.0.0.1", ingest), ("127.0.0.1", feed)}
        log = writer.log.read_text()
        assert f"writer ready on tcp://127.0.0.1:{ingest} (feed tcp://127.0.0.1:{feed})" in log
        assert f"for clients of tcp://localhost:{ingest}" in log
        # A client reads the same configuration and connects to the endpoint's name.
        client = load_settings(writer.config)
        connect = bus_endpoints(client.bus, client.paths.run)
        assert connect == Endpoints(f"tcp://localhost:{ingest}", f"tcp://localhost:{feed}")
        curve = ClientCurve(load_key_pair(keys, "collectors"), load_public_key(keys / "writer.key"))
        subscriber = FeedSubscriber(zmq.Context.instance(), connect.feed, ["trade_tick."], curve)
        producer = Producer(
            "p0", connect.ingest, tmp_path / "outbox", ack_timeout_s=0.5, curve=curve
        )
        try:
            seen = 0

            def fed() -> bool:
                nonlocal seen
                send_ticks(producer, 1)  # until the subscription has reached the writer
                seen += len(subscriber.recv(20) or [])
                return seen > 0

            wait_until(fed, 30, "a committed tick on the feed through localhost")
            send_ticks(producer, 499)
            assert producer.wait_acked(30)
        finally:
            producer.close(drain_timeout=0)
            subscriber.close()
        assert_exactly_once(sqlite_url, {"p0": producer.last_seq})
        assert writer.terminate() == 0
    finally:
        writer.kill()


def test_a_second_key_sending_as_a_source_another_key_sends_as_is_refused(
    tcp_bus: TcpBus, sqlite_url: str
) -> None:
    """Two hosts given one host name: both may send as ``p*``, but one source is one key's."""
    first = tcp_bus.producer("p0", "collectors")
    send_ticks(first, 300)
    assert first.wait_acked(30)
    twin = tcp_bus.producer("p0", "twin")  # the same name, its own sequence from 1
    own = tcp_bus.producer("p1", "twin")  # the twin's own source is still its
    send_ticks(twin, 50)
    send_ticks(own, 200)
    assert own.wait_acked(30)
    wait_until(lambda: alerts(sqlite_url, "bus_source_two_keys"), 30, "the refusal's alert")
    twin_key = load_public_key(tcp_bus.keys / "twin.key").decode()
    assert alerts(sqlite_url, "bus_source_two_keys") == [("bus_source_two_keys", twin_key)]
    # Never taken for duplicates of the first host's seqs 1..50: never acknowledged.
    assert twin.acked == 0
    send_ticks(first, 100)  # the owner goes on
    assert first.wait_acked(30)
    tcp_bus.writer.terminate()
    stopped = tcp_bus.writer.log.read_text().split("writer stopped:")[-1]
    assert int(stopped.split("refused_sources=")[1].split(">")[0]) >= 1
    assert "duplicates=0" in stopped
    assert_exactly_once(sqlite_url, {"p0": 400, "p1": 200, "writer": 1})


def test_a_writer_without_its_key_files_exits_2_naming_the_file(
    tmp_path: Path, sqlite_url: str
) -> None:
    writer = WriterProcess(
        tmp_path,
        sqlite_url,
        extra=(
            f'[bus]\ningest_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
            f'feed_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
            f'[bus.curve]\nkeys_dir = "{tmp_path / "keys"}"\nkey = "writer"\n'
        ),
    ).start(wait=False)
    assert writer.proc is not None
    assert writer.proc.wait(60) == 2
    assert "writer.key_secret" in writer.log.read_text()


def test_a_writer_with_a_secret_key_that_is_not_z85_exits_2_naming_the_file(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Not "cannot bind tcp://...: Invalid argument", which names neither the key nor its file."""
    keys = tmp_path / "keys"
    generate_key_pair(keys, "writer")
    _replace_key(keys / "writer.key_secret", "secret", "~" * 40)
    writer = WriterProcess(
        tmp_path,
        sqlite_url,
        extra=(
            f'[bus]\ningest_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
            f'feed_endpoint = "tcp://127.0.0.1:{free_port()}"\n'
            f'[bus.curve]\nkeys_dir = "{keys}"\nkey = "writer"\n'
        ),
    ).start(wait=False)
    assert writer.proc is not None
    assert writer.proc.wait(60) == 2
    log = writer.log.read_text()
    assert f"{keys / 'writer.key_secret'} holds a malformed CURVE key" in log
    assert "Invalid argument" not in log and "Traceback" not in log


def test_the_documented_allow_list_admits_each_host_its_own_sources() -> None:
    """The ``[bus.curve.clients]`` example of the architecture notes: the collectors' key may
    send as the source of every shipped program of that role, and as none of the store's."""
    from workers.etf.cli import CHECK_SOURCE
    from workers.etf.cli import SOURCE as ETF
    from workers.gap_recovery.cli import VERIFY_SOURCE
    from workers.notifier import ACK_SOURCE

    sources = {  # each shipped program's bus source
        **{name: name for name in ("writer", "master_file", "universe", "enrich", "backup")},
        **{name: name for name in ("archive", "token", "readiness", "track_a", "track_b")},
        **{name: name for name in ("gap_recovery", "notifier", "investor", "flows")},
        "archive_verify": "archive",
        **{name: ETF for name in ("etf_list", "etf_daily", "etf_holdings", "etf_backfill")},
        "etf_check": CHECK_SOURCE,
    }
    example = re.search(
        r"^collectors = \[.*?\]", (ROOT / "docs" / "ARCHITECTURE.md").read_text(), re.M | re.S
    )
    assert example is not None
    keys = KeyPair(b"s" * 40, b"s" * 40)
    curve = ServerCurve(keys, {b"c" * 40: tuple(tomllib.loads(example[0])["collectors"])})

    def admitted(source: str) -> bool:
        return curve.may_send("c" * 40, source)

    programs = load_settings(ROOT / "config" / "observer.toml").programs
    assert set(programs) == set(sources)  # a new program: name its source above
    for name, program in programs.items():
        assert admitted(sources[name]) == (program.host_role == "collectors"), name
    assert admitted("supervisor_collectors") and admitted(VERIFY_SOURCE)
    assert not admitted("supervisor") and not admitted(ACK_SOURCE)
