"""A synthetic producer process for benchmarks and chaos tests.

``python -m harness.loadgen --source S --events N`` sends N trade ticks as source S (after
whatever its outbox already assigned), waits until the writer acknowledged all of them, prints one
JSON line and exits 0. With ``--events 0`` it sends until SIGTERM, then drains: a supervised
worker whose every event must reach the database. ``--print-acks`` prints ``acked N`` as the
writer's acknowledgement grows (the power-cut test's record).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from bus.events import TradeTick
from bus.producer import Producer
from observer.config.load import load_settings
from observer.process.heartbeat import Heartbeat
from observer.runtime import producer_for, stop_on_signals

__all__ = ["synthetic_tick"]

_SYMBOLS = ("005930", "000660", "035420", "051910", "005380", "068270", "207940", "006400")
_RATES = tuple(Decimal(n - 150) / 100 for n in range(300))  # -1.50% .. +1.49%
_STRENGTH = Decimal("101.25")


def synthetic_tick(n: int, now_ns: int) -> TradeTick:
    """A plausible KRX execution, deterministic in ``n``."""
    price = 70_000 + (n * 37) % 5_000
    return TradeTick(
        symbol=_SYMBOLS[n % len(_SYMBOLS)],
        exchange_ns=now_ns,
        received_ns=now_ns,
        price=price,
        qty=1 + n % 97,
        cum_volume=n * 50,
        cum_value=n * 50 * price,
        change_rate=_RATES[n % 300],
        ask1=price + 100,
        bid1=price,
        strength=_STRENGTH,
        side="1",
        session="2",
    )


def main(argv: list[str] | None = None) -> int:
    """Produce, wait for the acks, report."""
    parser = argparse.ArgumentParser(prog="harness.loadgen")
    parser.add_argument("--source", required=True)
    parser.add_argument("--endpoint", help="default: the configured writer's")
    parser.add_argument("--outbox", type=Path, help="default: <run_dir>/outbox/<source>")
    parser.add_argument("--events", type=int, required=True, help="0: until SIGTERM")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = as fast as possible")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--sync", action="store_true", help="with --outbox: fsync it first")
    parser.add_argument("--segment-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--batch-events", type=int, default=1000)
    parser.add_argument("--print-acks", action="store_true")
    args = parser.parse_args(argv)

    if args.endpoint and args.outbox:
        producer = Producer(
            args.source,
            args.endpoint,
            args.outbox,
            sync=args.sync,
            segment_bytes=args.segment_bytes,
            batch_events=args.batch_events,
        )
    else:
        producer = producer_for(load_settings(), args.source)
    if args.print_acks:
        threading.Thread(target=_print_acks, args=(producer,), daemon=True).start()
    stop = stop_on_signals() if args.events == 0 else threading.Event()
    notifier = Heartbeat.from_env()
    notifier.ready()

    def counters() -> dict[str, float]:
        return {"sent": producer.last_seq, "acked": producer.acked}

    started, started_ns, cpu = time.monotonic(), time.time_ns(), time.process_time()
    first = producer.last_seq + 1
    i = 0
    while (i < args.events or args.events == 0) and not stop.is_set():
        if args.rate > 0:
            pause = started + i / args.rate - time.monotonic()
            if pause > 0 and stop.wait(pause):  # pacing a synthetic load
                break
        producer.send(synthetic_tick(first + i, time.time_ns()))
        i += 1
        notifier.beat(counters)
    producer.flush()
    sent_at = time.monotonic()
    drained = producer.wait_acked(args.drain_timeout)
    acked_ns, cpu = time.time_ns(), time.process_time() - cpu
    report = {
        "source": producer.source,  # as stored: host-qualified on a named host
        "first_seq": first,
        "last_seq": producer.last_seq,
        "send_s": sent_at - started,
        "total_s": time.monotonic() - started,
        # Wall clock, comparable across processes: a bench's span from the first send of
        # any producer to the last ack of all, without their interpreters' start.
        "started_ns": started_ns,
        "acked_ns": acked_ns,
        "cpu_s": cpu,  # every thread's, from the first send to the last ack
        "drained": drained,
        "resends": producer.resends,
        "reconnects": producer.reconnects,
    }
    producer.close(drain_timeout=0)
    print(json.dumps(report), flush=True)
    return 0 if drained else 1


def _print_acks(producer: Producer) -> None:
    printed = producer.acked
    while True:
        if (acked := producer.acked) > printed:
            print(f"acked {acked}", flush=True)
            printed = acked
        time.sleep(0.001)  # polls the producer's figure; nothing waits on it


if __name__ == "__main__":
    sys.exit(main())
