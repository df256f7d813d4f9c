"""The alert catalogue: every alert code the observer raises, what it means, what to do.

One entry per code (`AlertKind`): the severities it is raised at, the process that raises
it, what its subject names, what happened, what an operator does, and what ends it. The
modules that raise an alert keep its code where they raise it; a test holds the two together
(every code raised is here, every entry is raised somewhere). `observer alerts --catalogue`
prints it, and docs/operations.md's table of alerts is `markdown()`'s, word for word.

The supervisor's threshold rules are here as shipped (`[supervisor] rules`, and one
``enrichment_coverage_low_<region>`` per `[enrich] regions`); a rule an operator adds raises
the code it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bus.events import Severity

__all__ = ["CATALOGUE", "AlertKind", "markdown"]


@dataclass(frozen=True, slots=True)
class AlertKind:
    """One alert code: the condition ``(code, subject)`` names, for an operator."""

    code: str  # as raised: lower case, words joined by "_"
    severities: tuple[Severity, ...]  # each it is raised at, lowest first
    raised_by: str  # the process (its bus source) that raises it
    subject: str  # what the alert's subject names; "" for the whole system
    meaning: str  # what happened and what is at stake
    action: str  # what an operator does
    resolved: str  # what ends it: a resolution, or an acknowledgement


_KINDS = (
    AlertKind(
        code="account_on_two_hosts",
        severities=("critical",),
        raised_by="supervisor (store host)",
        subject="the account alias",
        meaning=(
            "The same [[kis.accounts]] alias is configured on two or more hosts: rows name "
            "their account, so the two hosts' data for it mix."
        ),
        action=(
            "Give each host accounts of its own aliases (rename or remove the alias in "
            "[[kis.accounts]] on all but one host) and restart that host's supervisor; "
            "`observer hosts` shows each host's roster."
        ),
        resolved=(
            "when the hosts' latest rosters (each supervisor publishes one at its start and "
            "daily; those of the last 36 h count) no longer show the overlap, at the store "
            "supervisor's next database reading"
        ),
    ),
    AlertKind(
        code="app_key_on_two_hosts",
        severities=("critical",),
        raised_by="supervisor (store host)",
        subject="the accounts sharing one app key, as alias@host separated by spaces",
        meaning=(
            "Two hosts use the same KIS app key under different aliases: that one KIS "
            "account's rate limit and its single WebSocket session are shared, so both hosts "
            "get refusals and lose real-time data."
        ),
        action=(
            "Give each host an account (app key) of its own in [[kis.accounts]] and restart "
            "its supervisor; `observer hosts` shows each host's roster."
        ),
        resolved=(
            "when the hosts' latest rosters (each supervisor publishes one at its start and "
            "daily; those of the last 36 h count) no longer show the overlap, at the store "
            "supervisor's next database reading"
        ),
    ),
    AlertKind(
        code="archive_damaged",
        severities=("critical",),
        raised_by="archive",
        subject="",
        meaning=(
            "Archive (Parquet) or raw-journal files no longer match what was recorded of "
            "them, or the archive job refused to replace a day's file with one holding fewer "
            "rows. Days involved are not pruned; for a day already pruned the file is the "
            "only copy of its rows."
        ),
        action=(
            "`observer archive verify [--date D]` lists every problem. A day still in the "
            "database is written again with `observer archive --date D`; a pruned day's file "
            "must come back from the backup of the archive volume (`[retention] dir`), which "
            "`observer db backup` does not cover."
        ),
        resolved=(
            "when `observer archive verify --alert` over every day (the weekly archive_verify"
            " job, or `observer ctl run archive_verify`) finds every file matching; a nightly"
            " archive run never resolves it"
        ),
    ),
    AlertKind(
        code="archive_failed",
        severities=("critical",),
        raised_by="archive",
        subject="",
        meaning=(
            "The archive job failed (database, writer or disk error), or some tables' days "
            "could not be written: those days stay in the database and are not pruned, so the"
            " database grows until they are written."
        ),
        action=(
            "Read the message (it names each table and day) and the job's log, fix the cause "
            "(disk space, writer running, database reachable), then `observer ctl run "
            "archive`; after an outage longer than 30 days, `observer archive run --look-back"
            " 90`."
        ),
        resolved=(
            "when a later `observer archive run` (the scheduled archive job) writes every day"
            " it tries; a hand `observer archive --date D` does not resolve it"
        ),
    ),
    AlertKind(
        code="archive_made",
        severities=("info",),
        raised_by="archive",
        subject="",
        meaning=(
            "The archive job wrote the day's files (count, rows, size and compression in the "
            "message) and asked the writer to prune the days past retention."
        ),
        action="Nothing to do.",
        resolved="never: an info note, never open",
    ),
    AlertKind(
        code="backup_failed",
        severities=("critical",),
        raised_by="backup",
        subject="",
        meaning=(
            "The nightly backup was not made or did not verify (restore into a scratch "
            "database and audit), or was refused for lack of room: there is no fresh backup "
            "of the database. A failed folder is kept as `*.failed`."
        ),
        action=(
            "Read the message and the backup job's log; free space where `[backup] dir` "
            "points (room for the dump, its verification copy and the `[backup] files`), then"
            " `observer ctl run backup`."
        ),
        resolved=(
            "when the next backup job (`observer backup run`) makes and verifies a backup; "
            "`observer db backup` by hand does not resolve it"
        ),
    ),
    AlertKind(
        code="backup_made",
        severities=("info",),
        raised_by="backup",
        subject="",
        meaning="The nightly backup was made and verified (folder, size and time in the message).",
        action="Nothing to do.",
        resolved="never: an info note, never open",
    ),
    AlertKind(
        code="bar_label_shifted",
        severities=("error",),
        raised_by="gap_recovery (gap_verify when `observer gap-recovery verify` runs it by hand)",
        subject="",
        meaning=(
            "The day's reconciliation found KIS's minute bars agree with the stored trades "
            "only when shifted by a minute: `[gap_recovery] bar_label` reads them a minute "
            "off, so recovered bars may sit in the wrong minute and those minutes are "
            "recorded as `shifted`, not checked."
        ),
        action=(
            "Set `[gap_recovery] bar_label` to what the message says, `observer ctl restart "
            "gap_recovery`, then `observer gap-recovery verify --date D` for the day; if the "
            "message says no setting fixes the shift, report it."
        ),
        resolved=(
            "never: acknowledge it (observer alerts ack ID); said once per shift per process "
            "run, so a restart with the setting unchanged raises it again"
        ),
    ),
    AlertKind(
        code="bus_conflict",
        severities=("critical",),
        raised_by="writer",
        subject="",
        meaning=(
            "Envelopes arrived repeating an already committed source/seq with different "
            "content: another process is sending as that source, or a producer lost its "
            "outbox. The first stays committed; the conflicting ones are kept in "
            "bus_conflicts."
        ),
        action=(
            "Find the second sender (two hosts with one [supervisor] host name, a copied run "
            "directory) and stop it; `observer audit` lists the conflicts and exits 1 while "
            "any is recorded. The message names the first source/seq."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_event_rejected",
        severities=("error",),
        raised_by="writer",
        subject="the source whose event was refused",
        meaning=(
            "The database refused one event (an integrity or data error); it is kept in "
            "rejected_events instead of its table, so that row is missing from the data while"
            " the source keeps flowing. Alerted once per source per writer run."
        ),
        action=(
            "Read the writer's log (var/log/writer.log) and the event's rejected_events row "
            "for the reason, and report it to the maintainers with the source/seq from the "
            "message."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_events_lost",
        severities=("critical",),
        raised_by="writer (stored under the declaring producer's source and seq)",
        subject="the producer's bus source",
        meaning=(
            "A producer declared seqs lost: the writer had acknowledged them, the outbox let "
            "them go, and the database no longer holds them (a restored backup, or a power "
            "cut under [bus] fsync = false). That data is gone for good."
        ),
        action=(
            "Run `observer audit` (it prints the LOST range); understand what the range "
            "covers, then `observer alerts ack ID`. `ctl status` stays unhealthy until then."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_frame_rejected",
        severities=("warning",),
        raised_by="writer",
        subject=(
            'the source, "unknown source" (a frame that does not decode) or "max_sources" (a '
            "frame over [writer] max_sources)"
        ),
        meaning=(
            "The writer rejected a frame it could not decode or that would pass [writer] "
            "max_sources, or an event of a source that does not decode (kept in "
            "rejected_events): those events are not stored. Alerted once per source per "
            "writer run."
        ),
        action=(
            "Read var/log/writer.log: undecodable events usually mean a producer runs a "
            "different release than the writer (upgrade both alike); for max_sources find the"
            " process inventing source names, or raise [writer] max_sources."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_handshake_failed",
        severities=("warning",),
        raised_by="writer",
        subject="the writer's tcp endpoint (ingest or feed)",
        meaning=(
            "A client failed the CURVE handshake on the writer's endpoint before its key "
            "could be checked, usually because it holds another writer's public key: it sends"
            " nothing and its events wait in its outbox. Alerted once per endpoint per writer"
            " run."
        ),
        action=(
            "On each collectors host check that [bus.curve] server_key names this writer's "
            "public key file; the client's `observer ctl status` shows the failing handshake."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_key_refused",
        severities=("critical",),
        raised_by="writer",
        subject="the refused client's CURVE public key (Z85 text)",
        meaning=(
            "A client tried to connect to the writer over tcp with a CURVE key that is not in"
            " [bus.curve.clients]; it was refused, so nothing it sends is stored. Alerted "
            "once per key per writer run."
        ),
        action=(
            "If the key is one of your hosts', copy its public NAME.key into the store host's"
            " [bus.curve] keys_dir, name it in [bus.curve.clients] with the sources it may "
            "send as, then `observer ctl restart writer`; if it is not yours, block that "
            "client."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_not_durable",
        severities=("warning",),
        raised_by="writer",
        subject="database",
        meaning=(
            "The PostgreSQL server runs with fsync = off (or synchronous_commit off for the "
            "writer): a power cut or OS crash can lose events the writer already acknowledged"
            " and the producers deleted. Raised at each writer start while so."
        ),
        action=(
            "Set fsync = on and synchronous_commit = on in postgresql.conf, reload the "
            "server, then `observer ctl restart writer` and acknowledge this alert."
        ),
        resolved="at the writer's first start that finds the server flushing its commits again",
    ),
    AlertKind(
        code="bus_outbox_backlog",
        severities=("warning",),
        raised_by="every producer (its bus source)",
        subject="",
        meaning=(
            "A process's outbox holds more than [bus] backlog_alert_events (1,000,000) events"
            " the writer has not acknowledged: the writer is down, unreachable or refusing "
            "this source, and the events pile up on this host's disk. The alert itself queues"
            " behind them, so it usually arrives late; the message names the source."
        ),
        action=(
            "Check the writer and the link: `observer ctl status` shows `bus: N events have "
            "waited ...` for the program; look for bus_source_not_allowed or "
            "bus_source_two_keys on the writer, and watch the outbox's disk (disk_low)."
        ),
        resolved=(
            "never: acknowledge it (observer alerts ack ID); it can fire again once the "
            "backlog has drained below the limit"
        ),
    ),
    AlertKind(
        code="bus_source_not_allowed",
        severities=("critical",),
        raised_by="writer",
        subject="the client's CURVE public key (Z85 text)",
        meaning=(
            "An admitted client key sent frames as a source that [bus.curve.clients] does not"
            " let it use; those frames are refused and that program's events stay in its "
            "outbox. Alerted once per key per writer run."
        ),
        action=(
            'Add the source (or a pattern such as "*@c2") to that key\'s entry in '
            "[bus.curve.clients] on the store host and `observer ctl restart writer`; the "
            "outbox then drains by itself."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="bus_source_two_keys",
        severities=("critical",),
        raised_by="writer",
        subject="the CURVE public key of the second client sending as the source",
        meaning=(
            "Two client keys send as the same bus source, almost always two hosts configured "
            "with the same [supervisor] host name; the second key's frames are refused and "
            "its events stay in its outbox."
        ),
        action=(
            "Give each host its own [supervisor] host name (stop it cleanly first) and admit "
            'each key for its own host only (`c1 = ["*@c1"]`) in [bus.curve.clients]; '
            "`observer hosts` lists the hosts' rosters."
        ),
        resolved=(
            "never: acknowledge it (observer alerts ack ID); a restarted writer learns the "
            "sources' keys afresh"
        ),
    ),
    AlertKind(
        code="capture_stopped",
        severities=("critical",),
        raised_by="writer",
        subject="",
        meaning=(
            "The capture file of `observer writer --capture` could not be written (usually a "
            "full volume) and stopped for the rest of the writer's run; the database still "
            "has every event, the capture only those up to there."
        ),
        action=(
            "Free space on the capture's volume (see disk_low/disk_critical for "
            "writer:capture), then `observer ctl restart writer`: it captures into a new file"
            " (<stem>-1...)."
        ),
        resolved=(
            "when a restarted writer's first frames are captured (into a new file beside "
            "the stopped one)"
        ),
    ),
    AlertKind(
        code="context_sync_slow",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Track B's context sync (replaying Track A's snapshots into the trigger engine "
            "before the first slots, at 09:29:50) took more than 30 s, so its slots were "
            "filled late."
        ),
        action=(
            "Check the database's load and latency and Track A's snapshots of the day "
            "(`observer track-a cycles`); the limit is the rule in [supervisor] rules."
        ),
        resolved="when a later context sync takes 30 s or less (usually the next session's)",
    ),
    AlertKind(
        code="control_key_refused",
        severities=("warning",),
        raised_by="supervisor",
        subject="the refused operator's CURVE public key (Z85 text)",
        meaning=(
            "The supervisor's tcp control endpoint refused a connection from a key not among "
            "[supervisor] operators: someone without access tried to command this host. "
            "Alerted once per key per supervisor run."
        ),
        action=(
            "If it is a legitimate operator, put their public NAME.key in [bus.curve] "
            "keys_dir, add NAME to [supervisor] operators and restart the supervisor; "
            "otherwise block that client."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="cpu_high",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "All supervised programs together use more CPU than [supervisor] "
            "cpu_alert_percent (85% of one core): the host may be too busy to keep up with "
            "the market data."
        ),
        action=(
            "See which program uses it in `observer ctl status` (cpu_percent per program) and"
            " its log; raise [supervisor] cpu_alert_percent if the host has the cores for it."
        ),
        resolved="when the total is back at or below the limit",
    ),
    AlertKind(
        code="disk_critical",
        severities=("critical",),
        raised_by="writer, and every producer",
        subject="PROCESS:VOLUME (writer:database, writer:capture, or SOURCE:outbox)",
        meaning=(
            "The volume has less free space than [disk] critical_free_bytes (256 MiB) or "
            "critical_free_percent (1%). On the writer's database volume the writer stops "
            "taking events (producers keep them in their outboxes) until there is room."
        ),
        action=(
            "Free space on the named volume now (old logs, backups, journal days, archives "
            "elsewhere); the writer resumes by itself. Thresholds are in [disk]."
        ),
        resolved="when the volume's free space is back above the critical thresholds",
    ),
    AlertKind(
        code="disk_low",
        severities=("warning",),
        raised_by="writer, and every producer",
        subject="PROCESS:VOLUME (writer:database, writer:capture, or SOURCE:outbox)",
        meaning=(
            "The volume has less free space than [disk] warn_free_bytes (2 GiB) or "
            "warn_free_percent (5%); at the critical level the writer stops taking events."
        ),
        action=(
            "Free space on the named volume or grow it before it reaches disk_critical; "
            "thresholds are in [disk]."
        ),
        resolved="when the volume's free space is back above the warning thresholds",
    ),
    AlertKind(
        code="enrich_breaker_open",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "The fallback sector source failed `[enrich] breaker_threshold` stocks in a row, "
            "so its circuit breaker opened: stocks it would have classified were deferred to "
            "the next run."
        ),
        action=(
            "Check the fallback source (`[enrich] fallback`, `fallback_url`) is up and not "
            "limiting this host; lower `[enrich] fallback_rate_per_s` if it throttles; "
            "`observer ctl run enrich` once it answers."
        ),
        resolved="when a later enrich run calls the fallback source without its breaker opening",
    ),
    AlertKind(
        code="enrich_cross_check",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "KIS's per-industry stock lists (HHDFS76370000) disagree with the masters' "
            "industry codes for more than `[enrich] cross_check_alert_pct` of the stocks "
            "compared in some region: sectors mapped from those codes may be wrong."
        ),
        action=(
            "`observer enrich report` lists the disagreeing stocks per region; check the "
            "master files and `config/sector_map.toml`."
        ),
        resolved=(
            "when an enrich run cross-checks every overseas region it runs and every region's"
            " share of disagreements is within the limit"
        ),
    ),
    AlertKind(
        code="enrich_cross_check_failed",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "The HHDFS76370000 cross-check failed at KIS for a region; that region and the "
            "ones after it were not cross-checked this run. Classification itself went on."
        ),
        action=(
            "Read the KIS error in the message; usually wait for the next run, or `observer "
            'ctl run enrich`; `[enrich] cross_check = "off"` turns the check off.'
        ),
        resolved="when an enrich run cross-checks every overseas region it runs",
    ),
    AlertKind(
        code="enrich_deferred",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "Some stocks were not classified this run (the fallback's breaker was open, or "
            "the run was stopped) and wait for the next run; their stored sectors stay."
        ),
        action=(
            "Usually nothing: the next run picks them up. If it repeats, see "
            "`enrich_breaker_open` and `observer enrich report`; `observer ctl run enrich` "
            "runs again."
        ),
        resolved=(
            "when an enrich run that is not stopped leaves no stock deferred in any region "
            "(other regions judged by their latest stored run)"
        ),
    ),
    AlertKind(
        code="enrich_fallback_failed",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "The fallback sector source failed after its retries for some stocks (counts per "
            "region in the context); they keep their stored sector and are asked again next "
            "run."
        ),
        action=(
            "Check the fallback source (`[enrich] fallback`, `fallback_url`, `max_retries`, "
            "`fallback_timeout_s`); `observer enrich report` shows what stayed unresolved."
        ),
        resolved=(
            "when an enrich run that is not stopped finds no fallback failure in any region "
            "(other regions judged by their latest stored run)"
        ),
    ),
    AlertKind(
        code="enrich_kis_codes_failed",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "KIS's industry catalogs (HHDFS76370100) could not be fetched at the start of an "
            "enrich run: new industry codes come without their names. Real accounts only."
        ),
        action=(
            "Read the KIS error; `observer enrich codes` fetches the catalogs by hand; "
            "`[enrich] kis_codes = false` stops asking."
        ),
        resolved=(
            "when a later enrich run fetches the catalogs (`observer enrich codes` alone does"
            " not resolve it)"
        ),
    ),
    AlertKind(
        code="enrich_kis_lookup_failed",
        severities=("warning",),
        raised_by="enrich",
        subject='"enrich"',
        meaning=(
            "Some per-stock KIS sector lookups (HHDFS76200200, and CTPF1702R if enabled) "
            "failed; those stocks went to the fallback source instead."
        ),
        action=(
            "Check the account in `observer ctl status`; usually wait for the next run. "
            "`[enrich] kis_detail` and `kis_search_info` switch the lookups."
        ),
        resolved="when an enrich run makes KIS lookups and none fails",
    ),
    AlertKind(
        code="enrichment_coverage_low_cn",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Fewer than [enrich] min_coverage_pct (80%) of the CN region's stocks have a GICS"
            " sector after the latest enrichment run: sector data for that region is "
            "incomplete."
        ),
        action=(
            "Run `observer enrich report` and read var/log/enrich.log (look for enrich_* "
            "alerts: fallback failures, breaker, deferred stocks); `observer ctl run enrich` "
            "runs it again. The rule comes from [enrich] (min_coverage_pct, regions)."
        ),
        resolved="when the CN region's coverage is back at or above the limit",
    ),
    AlertKind(
        code="enrichment_coverage_low_hk",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Fewer than [enrich] min_coverage_pct (80%) of the HK region's stocks have a GICS"
            " sector after the latest enrichment run: sector data for that region is "
            "incomplete."
        ),
        action=(
            "Run `observer enrich report` and read var/log/enrich.log (look for enrich_* "
            "alerts: fallback failures, breaker, deferred stocks); `observer ctl run enrich` "
            "runs it again. The rule comes from [enrich] (min_coverage_pct, regions)."
        ),
        resolved="when the HK region's coverage is back at or above the limit",
    ),
    AlertKind(
        code="enrichment_coverage_low_jp",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Fewer than [enrich] min_coverage_pct (80%) of the JP region's stocks have a GICS"
            " sector after the latest enrichment run: sector data for that region is "
            "incomplete."
        ),
        action=(
            "Run `observer enrich report` and read var/log/enrich.log (look for enrich_* "
            "alerts: fallback failures, breaker, deferred stocks); `observer ctl run enrich` "
            "runs it again. The rule comes from [enrich] (min_coverage_pct, regions)."
        ),
        resolved="when the JP region's coverage is back at or above the limit",
    ),
    AlertKind(
        code="enrichment_coverage_low_kr",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Fewer than [enrich] min_coverage_pct (80%) of the KR region's stocks have a GICS"
            " sector after the latest enrichment run: sector data for that region is "
            "incomplete."
        ),
        action=(
            "Run `observer enrich report` and read var/log/enrich.log (look for enrich_* "
            "alerts: fallback failures, breaker, deferred stocks); `observer ctl run enrich` "
            "runs it again. The rule comes from [enrich] (min_coverage_pct, regions)."
        ),
        resolved="when the KR region's coverage is back at or above the limit",
    ),
    AlertKind(
        code="enrichment_coverage_low_us",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Fewer than [enrich] min_coverage_pct (80%) of the US region's stocks have a GICS"
            " sector after the latest enrichment run: sector data for that region is "
            "incomplete."
        ),
        action=(
            "Run `observer enrich report` and read var/log/enrich.log (look for enrich_* "
            "alerts: fallback failures, breaker, deferred stocks); `observer ctl run enrich` "
            "runs it again. The rule comes from [enrich] (min_coverage_pct, regions)."
        ),
        resolved="when the US region's coverage is back at or above the limit",
    ),
    AlertKind(
        code="enrichment_coverage_low_vn",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Fewer than [enrich] min_coverage_pct (80%) of the VN region's stocks have a GICS"
            " sector after the latest enrichment run: sector data for that region is "
            "incomplete."
        ),
        action=(
            "Run `observer enrich report` and read var/log/enrich.log (look for enrich_* "
            "alerts: fallback failures, breaker, deferred stocks); `observer ctl run enrich` "
            "runs it again. The rule comes from [enrich] (min_coverage_pct, regions)."
        ),
        resolved="when the VN region's coverage is back at or above the limit",
    ),
    AlertKind(
        code="enrichment_stale",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "No enrichment run of any region for [enrich] stale_after_h (48 h): the stocks' "
            "sectors are not being kept up to date."
        ),
        action=(
            "Check the enrich job in `observer ctl status` and var/log/enrich.log, then "
            "`observer ctl run enrich`."
        ),
        resolved="when an enrichment run is recorded within the limit",
    ),
    AlertKind(
        code="etf_aum_jump",
        severities=("warning",),
        raised_by="etf",
        subject="the ETF's code",
        meaning=(
            "The ETF's net assets moved more than `[etf] aum_jump_pct` since the previous "
            "session: a real flow, a split, or a bad figure from KIS or KRX."
        ),
        action="Compare with the issuer or KRX: `observer etf report --date D --sort aum`.",
        resolved=(
            "when a later daily ETF run judges that ETF and finds no jump, or the ETF is no "
            "longer listed"
        ),
    ),
    AlertKind(
        code="etf_aum_mismatch",
        severities=("warning",),
        raised_by="etf",
        subject="the ETF's code",
        meaning=(
            "The ETF's net assets differ from listed units x NAV by more than `[etf] "
            "aum_check_pct` (widened for KIS's rounding): one of the figures is wrong, "
            "possibly the assumed unit of KIS's net assets."
        ),
        action=(
            "`observer etf report --date D --sort aum`; if many ETFs are off by the same "
            "factor, check `[etf] net_assets_unit_krw`."
        ),
        resolved=(
            "when a later daily ETF run judges that ETF within the limit, or the ETF is no "
            "longer listed"
        ),
    ),
    AlertKind(
        code="etf_chart_failures",
        severities=("warning",),
        raised_by="etf",
        subject="",
        meaning=(
            "The daily highs and lows (KIS chart calls) failed for some ETFs; their 52-week "
            "range stays based on closes until a run gets them."
        ),
        action=(
            "Usually nothing: the next daily run asks again. If it repeats, check the "
            "accounts in `observer ctl status`."
        ),
        resolved="when a later daily ETF run has no chart failure",
    ),
    AlertKind(
        code="etf_coverage_low",
        severities=("warning",),
        raised_by="etf, etf_check",
        subject='the field and the session, e.g. "fee 2026-11-20"',
        meaning=(
            "A field (issuer, fee, aum, premium_20d or high_52w) is known for fewer than "
            "`[etf] min_coverage_pct` of the active ETFs on a due session: reports and checks"
            " on it are incomplete."
        ),
        action=(
            "`observer etf status --date D` shows coverage per field. issuer and fee come "
            "from the KRX list (`observer ctl run etf_list`); aum, premium_20d and high_52w "
            "from the daily run and its history (`observer etf backfill --date D`)."
        ),
        resolved=(
            "when a later health judgement (etf_check or the daily run) finds that field's "
            "coverage at or above the floor"
        ),
    ),
    AlertKind(
        code="etf_daily_failures",
        severities=("warning", "error"),
        raised_by="etf",
        subject="the session (YYYY-MM-DD)",
        meaning=(
            "KIS calls failed for some ETFs in the daily run; their earlier rows are kept. An"
            " error when more than `[etf] max_failed_pct` failed (the run then exits 1)."
        ),
        action=(
            "Read the sample errors in the message and the accounts in `observer ctl status`;"
            " `observer ctl run etf_daily` after the close retries the last session; an older"
            " session is mended with `observer etf backfill --date D`."
        ),
        resolved="when a later daily ETF run finds every ETF's row of that session stored",
    ),
    AlertKind(
        code="etf_history_gaps",
        severities=("warning",),
        raised_by="etf",
        subject="",
        meaning=(
            "Some ETFs lack stored sessions in the backfill window and KIS's NAV series, "
            "asked, did not give them: their premium windows and 52-week range are computed "
            "without those days."
        ),
        action=(
            "`observer etf backfill --date D` mends the `[etf] repair_sessions` sessions up "
            "to D from KRX's own tables (or `observer ctl run etf_backfill --date D`)."
        ),
        resolved="when a later daily ETF run finds no session missing in the window",
    ),
    AlertKind(
        code="etf_holdings_count_mismatch",
        severities=("warning",),
        raised_by="etf",
        subject="the ETF's code",
        meaning=(
            "The constituents stored for the ETF do not match the count KIS gives (in the "
            "answer or the daily quote), or KIS said there are more it cannot send: the set "
            "may be cut short."
        ),
        action=(
            "`observer etf holdings-report SYMBOL` shows what was stored; `observer etf "
            "holdings --symbols SYMBOL` asks again."
        ),
        resolved=(
            "when a later holdings run collects that ETF and finds the counts equal (an ETF "
            "no longer collected keeps it: acknowledge it with `observer alerts ack ID`)"
        ),
    ),
    AlertKind(
        code="etf_holdings_failures",
        severities=("warning", "error"),
        raised_by="etf",
        subject="",
        meaning=(
            "The constituents call failed for some ETFs (or the answer listed a constituent "
            "twice); their earlier sets stay current. An error above `[etf] max_failed_pct` "
            "(the run exits 1)."
        ),
        action=(
            "Read the sample errors in the message; `observer ctl run etf_holdings` retries "
            "after the close."
        ),
        resolved="when a later holdings run over every ETF (not `--symbols`) has no failure",
    ),
    AlertKind(
        code="etf_krx_table_failed",
        severities=("warning",),
        raised_by="etf",
        subject="",
        meaning=(
            "KRX's daily ETF table could not be used (an error, or empty, partial or "
            "unreadable): the daily run kept KIS's rows only, or the weekly repair went "
            "through KIS."
        ),
        action=(
            "Usually nothing; if it repeats, check the KRX portal and login. `[etf] krx_table"
            " = false` stops reading the table in the daily run."
        ),
        resolved="when a later daily ETF run reads the table (or does not ask for it)",
    ),
    AlertKind(
        code="etf_list_missing",
        severities=("warning",),
        raised_by="etf",
        subject="",
        meaning=(
            "No KRX ETF list is held, so the ETF jobs collect the ETFs of the KIS masters "
            "instead, without listing details (issuer, fee, listing date)."
        ),
        action=(
            "`observer ctl run etf_list` (it needs a KRX login: "
            "OBSERVER_KRX_ID/OBSERVER_KRX_PW or `[krx] credentials_file`)."
        ),
        resolved="when the ETF list is applied, or a later daily ETF run finds a list held",
    ),
    AlertKind(
        code="etf_list_refused",
        severities=("error",),
        raised_by="etf",
        subject="",
        meaning=(
            "The KRX ETF list failed or looked wrong (empty, below `[etf] min_list_ratio` of "
            "the held list, or columns come back empty as if the portal changed): it was not "
            "applied and yesterday's list is kept."
        ),
        action=(
            "Read the reason in the message; try again later with `observer ctl run "
            "etf_list`. A portal whose columns changed needs a new release."
        ),
        resolved="when a later etf_list run applies a list",
    ),
    AlertKind(
        code="etf_list_rows_dropped",
        severities=("warning",),
        raised_by="etf",
        subject="",
        meaning=(
            "Rows of the KRX ETF list had a blank or invalid code, or repeated one, and were "
            "dropped; the rest was applied, and held ETFs on those rows were kept."
        ),
        action=(
            "Usually nothing; the message gives examples. If it persists, KRX's data is at fault."
        ),
        resolved="when a later etf_list run applies a list with no row dropped",
    ),
    AlertKind(
        code="etf_nav_pending",
        severities=("warning",),
        raised_by="etf",
        subject="the session (YYYY-MM-DD)",
        meaning=(
            "Some ETFs' rows of a recent session have no published NAV yet, so they have no "
            "premium or net assets; later runs ask again and replace them."
        ),
        action=(
            "Usually nothing: the next daily run or the weekly repair fills them. An older "
            "session still pending: `observer etf backfill --date D`."
        ),
        resolved="when a later daily ETF run finds every row of that session with its NAV",
    ),
    AlertKind(
        code="etf_premium_high",
        severities=("warning",),
        raised_by="etf",
        subject="the ETF's code",
        meaning=(
            "The ETF's price is further from its NAV than `[etf] premium_alert_pct` (premium "
            "or discount): a market event, or a wrong NAV or price."
        ),
        action="Check it: `observer etf report --date D --sort premium`.",
        resolved=(
            "when a later daily ETF run judges that ETF within the limit, or the ETF is no "
            "longer listed"
        ),
    ),
    AlertKind(
        code="etf_premium_mismatch",
        severities=("warning",),
        raised_by="etf",
        subject="",
        meaning=(
            "For some ETFs the premium computed from close and NAV differs from KIS's own "
            "premium figure (dprt) by more than 0.01 points: one of KIS's figures is "
            "inconsistent."
        ),
        action=(
            "The message names the worst five; compare them in `observer etf report --date D "
            "--sort premium`. Nothing to fix locally unless it affects every ETF."
        ),
        resolved="when a later daily ETF run finds no such ETF",
    ),
    AlertKind(
        code="etf_repair_failures",
        severities=("warning", "error"),
        raised_by="etf",
        subject="",
        meaning=(
            "The weekly NAV repair could not repair some ETFs (their stored rows stay as they"
            " are). An error above `[etf] max_failed_pct` (the run exits 1)."
        ),
        action=(
            "Read the sample errors in the message; `observer ctl run etf_backfill` (or "
            "`observer etf backfill --date D`) runs it again."
        ),
        resolved="when a later repair run has no failure",
    ),
    AlertKind(
        code="etf_stale",
        severities=("critical",),
        raised_by="etf, etf_check",
        subject="the session (YYYY-MM-DD)",
        meaning=(
            "Past `[etf] stale_at` (17:00 KST), fewer than `[etf] min_coverage_pct` of the "
            "active ETFs have a row for the session, or there is no active ETF at all: the "
            "day's ETF data is missing."
        ),
        action=(
            "`observer etf status --date D`; check the etf_daily job in `observer ctl status`"
            " and `observer ctl run etf_daily` (last session) or `observer etf backfill "
            "--date D` (older); then `observer ctl run etf_check`. No active ETF: `observer "
            "ctl run etf_list`."
        ),
        resolved=(
            "when a later health judgement of that session (etf_check or the daily run) finds"
            " enough rows"
        ),
    ),
    AlertKind(
        code="etf_universe_mismatch",
        severities=("warning",),
        raised_by="etf, etf_check",
        subject="",
        meaning=(
            "The KRX ETF list and the KIS masters' ETFs differ in more than `[etf] "
            "mismatch_pct` of the symbols: one of them is out of date."
        ),
        action="Refresh both: `observer ctl run etf_list` and `observer ctl run master_file`.",
        resolved="when a later health judgement with both lists finds them within the limit",
    ),
    AlertKind(
        code="flows_incomplete",
        severities=("warning", "error"),
        raised_by="flows",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "The flows job could not store some of the day's final investor flows, program "
            "trading or VIs: their calls failed, or KIS has not posted the day's row yet. "
            "Error past `[flows] max_failed_pct` (5 %) or when nothing answered; the job then"
            " exits 1 and the supervisor runs it again."
        ),
        action=(
            "Read the failures sampled in the message; once KIS answers, `observer flows run "
            "--date D` (or `observer ctl run flows --date D`) asks only what is still "
            "missing. Nothing asks an earlier day again by itself."
        ),
        resolved="when a run for that day leaves nothing failed or pending",
    ),
    AlertKind(
        code="flows_vi_cut",
        severities=("warning",),
        raised_by="flows",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "Some stocks had more volatility interruptions that day than the 30 KIS lists, so"
            " the rest are lost to the flows job for good; only Track B's VI feed (`[track_b]"
            " vi_feed`), where it was on, kept them as they happened."
        ),
        action=(
            "Nothing brings them back; if full VI history matters, keep `[track_b] vi_feed` "
            "on. Acknowledge once noted."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="gap_queue_high",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "More than 100 gaps wait in gap recovery's queue: missing minutes are being "
            "repaired more slowly than they appear."
        ),
        action=(
            "Look at the account's REST errors and pace in `observer ctl status` and at "
            "`observer gap-recovery report --date D`; [kis] process_share gives gap recovery "
            "its share of the budget."
        ),
        resolved="when the queue is back to 100 or fewer",
    ),
    AlertKind(
        code="gap_success_low",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "Less than 95% of the day's settled gaps (once at least 20 are settled) were "
            "recovered: the day's data has more holes than the target."
        ),
        action=(
            "Run `observer gap-recovery report --date D` for the causes and read "
            "gaps_unrecoverable; check the account's REST errors in `observer ctl status`."
        ),
        resolved=(
            "when the day's success rate is back at or above 95% (a new trading day starts at 100)"
        ),
    ),
    AlertKind(
        code="gap_trades_not_closing",
        severities=("warning",),
        raised_by="gap_recovery",
        subject="the venue (KRX, NXT or combined)",
        meaning=(
            "`[gap_recovery] trade_misses_alert` (5) of the venue's volume-chain gaps in a "
            "row got minute bars because KIS's trades did not close their chain: the minutes "
            "are whole, but not proven trade by trade, and KIS's answer to FHPST01060000 may "
            "have changed."
        ),
        action=(
            "Read a gap's detail (`not by trades: ...`) in `observer gap-recovery report "
            "--date D`, and run `observer kis check` to see whether the FHPST01060000 answer "
            "changed."
        ),
        resolved=(
            "when the venue's next volume-chain gap is closed by its trades (within the same "
            "process run: after a restart only an acknowledgement ends it)"
        ),
    ),
    AlertKind(
        code="gaps_not_offered_on_paper",
        severities=("warning",),
        raised_by="gap_recovery",
        subject="the account alias",
        meaning=(
            "The account is a paper account: KIS gives it no earlier day's minute bars "
            "(FHKST03010230), so gaps of earlier days are kept as markers and never "
            "recovered. Today's gaps are still recovered."
        ),
        action=(
            "Expected on paper accounts; a real account's keys lift the limit. Acknowledge it."
        ),
        resolved=(
            "never: acknowledge it (observer alerts ack ID); raised once per account, not "
            "repeated after a restart while it is open"
        ),
    ),
    AlertKind(
        code="gaps_unrecoverable",
        severities=("error",),
        raised_by="gap_recovery",
        subject="the day the gaps began (YYYY-MM-DD, KST)",
        meaning=(
            "Gaps of that day ended unrecoverable: KIS did not give their minute bars within "
            "`[gap_recovery] max_attempts` / `retry_window_s`, so those trades are missing "
            "from the data. Raised again each time the day's count doubles."
        ),
        action=(
            "See which gaps and why in `observer gap-recovery report --date D` and check the "
            "accounts in `observer ctl status`; they are retried every `[gap_recovery] "
            "retake_s` for `retake_days` (7) days."
        ),
        resolved=(
            "when none of the day's gaps is unrecoverable any more, or as given up once the "
            "day leaves the `[gap_recovery] retake_days` window"
        ),
    ),
    AlertKind(
        code="investor_answers_not_today",
        severities=("warning",),
        raised_by="investor",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "Some members' investor-estimate answers held postings not due yet, so they are "
            "taken to be another day's (KIS's answer has no date) and none of them was "
            "stored."
        ),
        action=(
            "Usually KIS still serving the last session's figures early in the day: wait for "
            "the next scheduled run; if it persists, `observer kis check` shows which "
            "postings KIS answers against those due."
        ),
        resolved="when a later run that day gets answers that all hold today's postings alone",
    ),
    AlertKind(
        code="investor_failures",
        severities=("warning", "error"),
        raised_by="investor",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "Some members' investor-estimate calls failed in a run; KIS keeps only today's "
            "estimates, so what is not fetched that day is lost. Error past `[investor] "
            "max_failed_pct` (5 %) or when none answered; the job then exits 1 and is run "
            "again."
        ),
        action=(
            "Read the failures sampled in the message and the accounts in `observer ctl "
            "status`; `observer ctl run investor` asks again (the same day only)."
        ),
        resolved=(
            "when a later run that day has every member answer; a day left failing needs "
            "`observer alerts ack ID`"
        ),
    ),
    AlertKind(
        code="investor_posting_missed",
        severities=("warning",),
        raised_by="investor",
        subject="the day and posting time (YYYY-MM-DD HH:MM)",
        meaning=(
            "A posting of KIS's intraday investor estimates (09:30, 10:00, 11:20, 13:20, "
            "14:30) is in no member's answer `[investor] grace_min` (30) minutes after its "
            "time; KIS keeps today's alone, so if it never appears that day it is gone."
        ),
        action=(
            "Usually KIS posted late or not at all: the next scheduled run asks again, or "
            "`observer ctl run investor`. Acknowledge a posting still missing after the day."
        ),
        resolved="when a later run that day finds the posting in an answer",
    ),
    AlertKind(
        code="investor_postings_revised",
        severities=("warning",),
        raised_by="investor",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "Postings already stored were answered later with other figures: each revision is"
            " stored as a row of its own beside the first, which is kept (the dataset reads "
            "the newest)."
        ),
        action=(
            "Nothing to fix; note that the day's estimates changed after first being stored, "
            "then acknowledge it."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="job_overlap",
        severities=("warning",),
        raised_by="supervisor",
        subject="the job's name",
        meaning=(
            "A job's scheduled run came due while its previous run was still running or "
            "waiting, so this run was skipped; the message names the job."
        ),
        action=(
            "Read the job's log to see why it runs so long (`observer ctl status` shows it); "
            "if the skipped run is needed, `observer ctl run NAME` once it has ended."
        ),
        resolved=(
            "when the job's next run starts (one resolution ends each skip's alert); a "
            "restarted supervisor takes it over, and ends it if the job is not one of its programs"
        ),
    ),
    AlertKind(
        code="job_run_skipped",
        severities=("warning",),
        raised_by="supervisor",
        subject="the job's name",
        meaning=(
            "At its start the supervisor gave up due runs of a job that were missed or "
            "interrupted while no supervisor ran, longer ago than [supervisor] catch_up_s (6 "
            "h); that work was not done."
        ),
        action="`observer ctl run NAME` runs the job now if its work is still wanted.",
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="kis_journal_failed",
        severities=("warning",),
        raised_by="track_a, track_b, gap_recovery, investor, flows",
        subject="the process's bus source",
        meaning=(
            "The process could not write its raw journal of KIS frames and answers (usually a"
            " full disk); it goes on without it, so that stretch of raw data is not kept for "
            "replay."
        ),
        action=(
            "Free space on [kis.journal] dir's volume; `observer journal list` shows the "
            "files. [kis.journal] enabled = false turns the journal off."
        ),
        resolved=(
            "when the process opens a new journal file (the first record a minute later, or "
            "the next day's)"
        ),
    ),
    AlertKind(
        code="kis_rate_limited",
        severities=("warning",),
        raised_by=(
            "gap_recovery, universe, investor, flows, etf (its daily run, holdings and repair),"
            " enrich"
        ),
        subject="the account alias",
        meaning=(
            "KIS refused more than 5 % (at least 3) of the process's calls as the account (in"
            " a minute's calls of gap recovery, or a job's run or build) as over its rate limit"
            " (EGW00201). Nothing is lost: refused calls are retried at a slower pace, so the"
            " work takes longer and spends more calls; but the account's budget as configured"
            " is above its budget at KIS, or another program uses its app key."
        ),
        action=(
            "Check the account's `[[kis.accounts]] rest_per_second` and `key_issued` against "
            "its budget at KIS (18/s real, 1/s paper, 3/s in a new key's first 3 days, by the "
            "2026 notices), and that no other program uses its app key; `observer kis check "
            "--budget S` measures the budget (never beside the running processes)."
        ),
        resolved=(
            "when a later minute of gap recovery's calls, or the job's next run, is refused no "
            "more than 5 % of its calls as the account"
        ),
    ),
    AlertKind(
        code="krx_login_failed",
        severities=("warning", "error"),
        raised_by="etf",
        subject="",
        meaning=(
            "The ETF jobs cannot use the KRX portal: no KRX login is configured (warning; the"
            " list is not read, the daily run and repair go without KRX's table), or the "
            "portal refused the login while reading the list (error; yesterday's list is "
            "kept)."
        ),
        action=(
            "Set OBSERVER_KRX_ID/OBSERVER_KRX_PW or `[krx] credentials_file` (owner-only), "
            "check the account at KRX, then `observer ctl run etf_list`."
        ),
        resolved="when a later etf_list run applies a list",
    ),
    AlertKind(
        code="leftover_processes",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "At start the supervisor found and ended processes left running by a previous "
            "supervisor that died without stopping them; that supervisor's end may have cut "
            "work short."
        ),
        action=(
            "Find out why the previous supervisor died (var/log/observer.log, supervisord's "
            "log) and check `observer ctl status`."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="master_file_failed",
        severities=("error", "critical"),
        raised_by="master_file",
        subject="the market (KOSPI, KOSDAQ, NAS, ...)",
        meaning=(
            "A master file's check or download failed (HTTP, size, zip, CRC, encoding, record"
            " shape, too many malformed fields); the file in use and the database stay as "
            "they were. Critical from `[master_file] failures_critical` (3) failed runs in a "
            "row."
        ),
        action=(
            "Read the cause in the message and `observer master-file status`; once fixed, "
            "`observer master-file update --exchange CODE` (or `observer ctl run "
            "master_file`)."
        ),
        resolved="when the market's next check gets through",
    ),
    AlertKind(
        code="master_file_stale",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "The KIS master file checked longest ago was last checked more than 48 h ago: "
            "listings and symbol data may be out of date."
        ),
        action=(
            "Check the master_file job in `observer ctl status` and var/log/master_file.log "
            "(master_file_failed, master_review_held), then `observer ctl run master_file`."
        ),
        resolved="when every master file has been checked within 48 h",
    ),
    AlertKind(
        code="master_new_codes",
        severities=("info",),
        raised_by="master_file",
        subject="the market",
        meaning=(
            "The master holds a group code or `.cod` column its documented layout lacks; the "
            "rows are read as listings, nothing is damaged. Said once per finding."
        ),
        action=(
            "Tell the maintainers what the code means (docs/kis.md); nothing to do on the system."
        ),
        resolved="never: an info note, it is never open",
    ),
    AlertKind(
        code="master_quality_low",
        severities=("warning",),
        raised_by="master_file",
        subject="the market",
        meaning=(
            "A downloaded master file has fewer complete rows than `[master_file] "
            "quality_alert_pct` (95 %): some listings lack fields the system reads."
        ),
        action=(
            "Read the figures in the message; `observer master-file verify --region R` shows "
            "each file's quality. Report a persistent drop to the maintainers."
        ),
        resolved="when a later download of the market without the problem is applied",
    ),
    AlertKind(
        code="master_records_malformed",
        severities=("warning",),
        raised_by="master_file",
        subject="the market",
        meaning=(
            "Records in a downloaded master hold fields outside their form; their listings "
            "are left as stored, neither changed nor removed, and one of them may be a live "
            "stock."
        ),
        action=(
            "Check the records named in the message; if the master stays malformed, report "
            "it. The universe also leaves such candidates out (`universe_members_failed`)."
        ),
        resolved="when a later download of the market without malformed records is applied",
    ),
    AlertKind(
        code="master_remote_suspect",
        severities=("critical",),
        raised_by="master_file",
        subject="the market",
        meaning=(
            "KIS's master host reports the file as 0 bytes; it was not downloaded and the "
            "file in use is kept. Raised again at every run while the host says so."
        ),
        action=(
            "Nothing to apply; check again later with `observer master-file update --exchange"
            " CODE`. If it persists, KIS's master host is broken."
        ),
        resolved="when a later check of the market finds the file unchanged or applies a download",
    ),
    AlertKind(
        code="master_review_held",
        severities=("critical",),
        raised_by="master_file",
        subject="the review id",
        meaning=(
            "A new master file looks broken (too many new, removed or changed listings, too "
            "few records, a large size decrease) and is held, not applied, until an operator "
            "decides."
        ),
        action=(
            "`observer master-file review ID` shows the held change; `observer master-file "
            "review ID --approve` or `--reject`; `observer master-file restore --exchange "
            "CODE` puts the newest backup back."
        ),
        resolved="when the review is approved, rejected, or superseded by a newer change or file",
    ),
    AlertKind(
        code="master_size_change",
        severities=("warning",),
        raised_by="master_file",
        subject="the market",
        meaning=(
            "A master file grew more than `[master_file] growth_alert_pct` (20 %), or shrank "
            "by up to `shrink_hold_pct` (10 %); it was downloaded, verified and applied."
        ),
        action=(
            "Check what changed with `observer master-file history --exchange CODE`; nothing "
            "to do if the listings look right."
        ),
        resolved="when a later check of the market finds the file unchanged or applies a download",
    ),
    AlertKind(
        code="master_stale_file",
        severities=("warning",),
        raised_by="master_file",
        subject="the market",
        meaning=(
            "KIS's master host served a file older than the one in use (by Last-Modified), or"
            " one applied before and replaced since: a stale copy, not applied."
        ),
        action=(
            "Usually a stale mirror that passes; if the older file is really wanted, "
            "`observer master-file update --exchange CODE --allow-rollback` applies it."
        ),
        resolved="when a later check of the market finds the file unchanged or applies a download",
    ),
    AlertKind(
        code="memory_high",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "All supervised programs together use more memory (RSS) than [supervisor] "
            "rss_alert_bytes (2.5 GiB): the host may start swapping or kill a process."
        ),
        action=(
            "See which program uses it in `observer ctl status` (rss_bytes); `observer ctl "
            "restart NAME` frees a leaking one; raise rss_alert_bytes if the host has the "
            "memory."
        ),
        resolved="when the total is back at or below the limit",
    ),
    AlertKind(
        code="metrics_unavailable",
        severities=("error",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "The supervisor could not open its Prometheus /metrics endpoint (the port is busy"
            " or the address is not this host's): Prometheus and Grafana get nothing from "
            "this host. Market data keeps flowing."
        ),
        action=(
            "Free the port (it is tried again every minute), or change [supervisor] "
            "metrics_host / metrics_port (0 turns it off) and restart the supervisor."
        ),
        resolved=(
            "when the port is served: the supervisor tries it again every "
            "`[supervisor] metrics_retry_s` (60 s); after a restart, at its first reading if "
            "it serves it (or metrics are off)"
        ),
    ),
    AlertKind(
        code="notifier_started",
        severities=("info",),
        raised_by="notifier",
        subject="",
        meaning=(
            "The notifier started and names the channels alerts go to. Sent only with "
            "`[notifier] started_alert = true` (off by default)."
        ),
        action="Nothing to do.",
        resolved="never: an info note, never open",
    ),
    AlertKind(
        code="notify_channel_down",
        severities=("error",),
        raised_by="notifier",
        subject='the channel\'s target ("ops", or "ops.2" for its second URL)',
        meaning=(
            "`[notifier] down_after` sends in a row to this channel target failed: its alerts"
            " are not reaching people (they are retried, and this alert goes to the other "
            "channels)."
        ),
        action=(
            "Check the service and the URL (OBSERVER_NOTIFY_<NAME>_URLS or `[notifier] "
            "credentials_file`); `observer alerts` shows deliveries; after changing a URL, "
            "`observer ctl restart notifier`."
        ),
        resolved="when a send to that target succeeds again",
    ),
    AlertKind(
        code="partition_maintenance_failed",
        severities=("error",),
        raised_by="writer",
        subject="partitions",
        meaning=(
            "On PostgreSQL the writer failed 5 times in a row to create the day partitions "
            "ahead ([retention] partition_days_ahead); new days land in the default "
            "partitions meanwhile, nothing is lost."
        ),
        action=(
            "Read var/log/writer.log for the database error (locks, permissions, disk) and "
            "fix it; the writer keeps retrying."
        ),
        resolved="when a later partition maintenance succeeds",
    ),
    AlertKind(
        code="program_crash_loop",
        severities=("error",),
        raised_by="supervisor",
        subject="the program's name",
        meaning=(
            "A daemon or session worker failed 5 times within an hour, each time after "
            "running long enough to be forgiven, so it would be restarted for ever: its work "
            "keeps being interrupted."
        ),
        action=(
            "Read the program's log (var/log/NAME.log) for the repeated failure and fix it; "
            "`observer ctl stop NAME` holds it meanwhile."
        ),
        resolved="after an hour without a failure of the program",
    ),
    AlertKind(
        code="program_fatal",
        severities=("critical",),
        raised_by="supervisor",
        subject="the program's name",
        meaning=(
            "A supervised program failed [programs.NAME] max_failures times in a row (8) and "
            "the supervisor gave up restarting it: what it does is not being done."
        ),
        action=(
            "Read the program's log, fix the cause, then `observer ctl start NAME` (or `ctl "
            "run NAME` for a job); `ctl stop NAME` holds it instead."
        ),
        resolved=(
            "when the program runs again (a daemon's READY, a job's successful run), is held "
            "by `ctl stop`, or is no longer supervised on this host"
        ),
    ),
    AlertKind(
        code="program_replaced",
        severities=("warning",),
        raised_by="supervisor",
        subject="the program's name",
        meaning=(
            "A daemon or session worker hung or crashed and was restarted; later replacements"
            " fold into this alert and are counted per day in `observer ctl status`."
        ),
        action=(
            "Read the program's log around the time in the message; repeated replacements "
            "escalate to program_crash_loop or program_fatal."
        ),
        resolved=(
            "when the program has run 60 minutes from a READY without failing, or is held by "
            "`ctl stop` while not running"
        ),
    ),
    AlertKind(
        code="prune_failed",
        severities=("error",),
        raised_by="writer",
        subject="TABLE:DAY (the table and trading day)",
        meaning=(
            "The writer could not delete an archived day's rows from the database (5 database"
            " failures, or fewer rows deleted than expected); the rows stay, the database "
            "grows, nothing is lost."
        ),
        action=(
            "Read var/log/writer.log for the database error; the archive job asks again at "
            "its next run (`observer ctl run archive` to ask now)."
        ),
        resolved="when a later pruning of the same table and day succeeds",
    ),
    AlertKind(
        code="prune_refused",
        severities=("warning",),
        raised_by="writer",
        subject="TABLE:DAY (the table and trading day)",
        meaning=(
            "The writer refused to prune a day because its rows no longer match its archive "
            "(no archive record with those rows and checksum, or the row counts differ); the "
            "rows stay in the database."
        ),
        action=(
            "The archive job's next run writes an outdated day file again and asks once more "
            "(`observer ctl run archive` does it now); if it is refused again, `observer "
            "archive verify --date D` checks the day's files."
        ),
        resolved=(
            "when a later request prunes the same table's day (after a restart too: the open "
            "alert is read at the writer's next successful prune)"
        ),
    ),
    AlertKind(
        code="readiness_failed",
        severities=("critical",),
        raised_by="readiness",
        subject="the account alias",
        meaning=(
            "The pre-market check found the account's token, REST host or WebSocket session "
            "not ready after `[readiness] retries`; the day goes on degraded on the cached "
            "token and key, and `ctl status` shows the account unhealthy."
        ),
        action=(
            "See the account in `observer ctl status` and the problems in the message; "
            "`observer ctl run token` issues the token again, `observer ctl run readiness` "
            "checks again."
        ),
        resolved=(
            "when a later check of the account passes (the job rechecks every `[readiness] "
            "recheck_s` until the idle phase, or a later run)"
        ),
    ),
    AlertKind(
        code="readiness_ok",
        severities=("info",),
        raised_by="readiness",
        subject="the account alias",
        meaning=(
            "The account passed the pre-market check: token, REST host and WebSocket session "
            "are ready for the session."
        ),
        action="Nothing to do.",
        resolved="never: an info note, it is never open",
    ),
    AlertKind(
        code="reconciliation_done",
        severities=("info",),
        raised_by="gap_recovery (gap_verify when `observer gap-recovery verify` runs it by hand)",
        subject="",
        meaning=(
            "A reconciliation run finished: watched minutes and symbols, completeness, misses"
            " and REST calls (a retry's figures cover only the symbols retried)."
        ),
        action="Nothing to do; `observer gap-recovery report --date D` shows the day in full.",
        resolved="never: an info note, it is never open",
    ),
    AlertKind(
        code="reconciliation_excess",
        severities=("warning",),
        raised_by="gap_recovery (gap_verify when `observer gap-recovery verify` runs it by hand)",
        subject="",
        meaning=(
            "Some watched minutes hold more stored volume than the exchange's final bar: "
            "trades stored twice or stamped in the wrong minute, so volumes there are "
            "overstated."
        ),
        action=(
            "Find the minutes in `observer gap-recovery report --date D` and check those "
            "symbols' trades for duplicates or mis-stamped ones; report it if it recurs."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="reconciliation_failed",
        severities=("error", "critical"),
        raised_by="gap_recovery (gap_verify when `observer gap-recovery verify` runs it by hand)",
        subject="the day, and its venues when a run covered some (`2026-11-20 NXT`)",
        meaning=(
            "Some symbols could not be reconciled because KIS gave no bars or the database "
            "read failed (an error, once for its day and venues); critical once "
            "`[gap_recovery] verify_attempts` (3) runs have failed, when the daemon gives up "
            "on the day."
        ),
        action=(
            "Read why in the message; once KIS and the database answer, `observer "
            "gap-recovery verify --date D` reconciles only the symbols not yet done (an "
            "earlier day needs a real account)."
        ),
        resolved=(
            "by the daemon's run that reconciles every symbol left of its day and venues (a "
            "retry, or a restarted daemon's); one given up on (critical), or raised by hand: "
            "acknowledge it once `verify` has reconciled the day"
        ),
    ),
    AlertKind(
        code="reconciliation_misses",
        severities=("warning",),
        raised_by="gap_recovery (gap_verify when `observer gap-recovery verify` runs it by hand)",
        subject="",
        meaning=(
            "Watched minutes were short of the exchange's bar with no gap recorded: Track B "
            "missed trades without noticing. Each is published as a `reconciliation` gap and "
            "recovered."
        ),
        action=(
            "Usually nothing: the gaps are recovered by themselves. Many misses point at "
            "Track B's detection; see `observer gap-recovery report --date D`."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="reconciliation_not_offered",
        severities=("warning",),
        raised_by="gap_recovery (gap_verify when `observer gap-recovery verify` runs it by hand)",
        subject="the account alias",
        meaning=(
            "A paper account cannot reconcile a day once it is over (no FHKST03010230), so "
            "that account's part of the reconciliation stops; the day's own reconciliation "
            "after the close still runs."
        ),
        action=(
            "Expected on paper accounts; a real account's keys lift the limit. Acknowledge it."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="retention_pruned",
        severities=("info",),
        raised_by="writer",
        subject="TABLE:DAY (the table and trading day)",
        meaning=(
            "The writer deleted an archived day's rows from the database as retention asks; "
            "the day is now read from its archive files."
        ),
        action="Nothing; the retention per table is set in [retention].",
        resolved="never: an info note, never open",
    ),
    AlertKind(
        code="rule_metric_unknown",
        severities=("warning",),
        raised_by="supervisor",
        subject="the threshold rule's code",
        meaning=(
            "A threshold rule in [supervisor] rules names a heartbeat counter its program "
            "does not report (a misspelling, or a renamed counter), so the rule is never "
            "judged; the message lists the counters the program does report."
        ),
        action="Correct the rule's metric in [supervisor] rules and restart the supervisor.",
        resolved=(
            "when the program reports the counter, or the rule no longer names a program run "
            "on this host"
        ),
    ),
    AlertKind(
        code="state_file_unreadable",
        severities=("warning",),
        raised_by="its owner: supervisor, token readers, universe, master_file, enrich, track_b",
        subject="the file's path",
        meaning=(
            "A state file (token cache, universe file, pins, holds, schedule, replacements, "
            "the supervisor's children record, ...) did not read; it was set aside as "
            "NAME.bad-<time> and its owner rebuilt it. The message says what was lost."
        ),
        action=(
            "Read the message for what was lost (e.g. holds or pins to set again); keep the "
            ".bad file to look at, and check the disk if it repeats."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="token_renewal_failed",
        severities=("critical",),
        raised_by="token",
        subject="the account alias",
        meaning=(
            "The token job could not issue the account's access token or approval key after "
            "`[token] retries`; the message says whether the previous one lasts the day or "
            "KIS calls fail from when it expires (then the job exits 1 and is run again)."
        ),
        action=(
            "See the error and the account in `observer ctl status`; check the app key and "
            "KIS, then `observer ctl run token` (`--renew` issues both anew)."
        ),
        resolved="when a later run gets the account both a token and an approval key that last",
    ),
    AlertKind(
        code="token_unavailable",
        severities=("critical",),
        raised_by="track_a, track_b, gap_recovery, readiness",
        subject="the account alias",
        meaning=(
            "A worker needs an access token or approval key and the token cache has no valid "
            "one; it waits [kis] token_wait_s for the token job, then its KIS calls fail: no "
            "data from that account."
        ),
        action=(
            "Check the token job (`observer ctl status`, token_renewal_failed) and run "
            "`observer ctl run token`."
        ),
        resolved=(
            "when the same worker process holds a valid token and key again, or the token job "
            "issues the account a token and key that last the day (a reader that exited, such "
            "as the readiness job, cannot end its own)"
        ),
    ),
    AlertKind(
        code="track_a_cycle_failed",
        severities=("critical",),
        raised_by="track_a",
        subject="\"rest\": this process's REST calls, every account's",
        meaning=(
            "In a Track A cycle no symbol answered its current-price request: raised after "
            "the first pass with no answer, and again at the cycle's end if none ever "
            "answered. While it lasts no universe price is taken, and a price not taken at "
            "its time is lost."
        ),
        action=(
            "`observer ctl status` shows each account's REST errors and token; a missing "
            "token is `observer ctl run token`, a KIS outage is waited out (the cycle keeps "
            "retrying). `observer track-a cycles` shows each cycle's failures."
        ),
        resolved=(
            "when any symbol answers again, in this cycle or a later one (a restart takes an "
            "open one over)"
        ),
    ),
    AlertKind(
        code="track_a_missing",
        severities=("warning",),
        raised_by="track_a",
        subject="the venue (KRX or NXT) of the cycle",
        meaning=(
            "A Track A cycle ended without a snapshot of some universe symbols (they kept "
            "failing, or the next cycle cut this one off before they were asked); the message"
            " gives the counts. Those prices are lost for that cycle."
        ),
        action=(
            "`observer track-a cycles --date D` shows failed and unfinished symbols and "
            "OVERRAN cycles. Cycles that overrun need more REST rate: `[track_a] "
            "requests_per_account`, `[kis] process_share` track_a, `[[kis.accounts]] "
            "rest_per_second`; a few failures need nothing. Then acknowledge it."
        ),
        resolved=(
            "when the venue's next cycle stores every symbol (taken over by a restarted Track A)"
        ),
    ),
    AlertKind(
        code="track_a_no_universe",
        severities=("critical",),
        raised_by="track_a",
        subject="",
        meaning=(
            "There is no universe for today `[track_a] universe_alert_s` after a cycle was "
            "due (or by the cycle's deadline), or the database cannot be read: Track A has no"
            " symbols to ask, and its cycles run empty."
        ),
        action=(
            "Check the universe job's log and alerts and run it again: `observer ctl run "
            "universe` (or `observer universe build`). If the message says the database does "
            "not answer, bring the database back."
        ),
        resolved="when Track A reads the day's universe (a restart takes an open one over)",
    ),
    AlertKind(
        code="track_a_rate_limited",
        severities=("warning",),
        raised_by="track_a",
        subject="the venue (KRX or NXT) of the cycle",
        meaning=(
            "KIS refused more than 5 % of a cycle's calls (at least 3) as over its rate limit"
            " (EGW00201). The cycle completes, later and at more calls, because refused calls"
            " are retried and the pace slows."
        ),
        action=(
            "Check each named account's `[[kis.accounts]] rest_per_second` and `key_issued` "
            "against its budget at KIS, and that no other program uses its app key; `observer"
            " kis check --budget S` measures the budget (never beside the running processes)."
        ),
        resolved=(
            "when the venue's next cycle is refused no more than 5 % of i"
            "ts calls (taken over by a restarted Track A)"
        ),
    ),
    AlertKind(
        code="track_b_account_down",
        severities=("critical",),
        raised_by="track_b",
        subject="the account's alias",
        meaning=(
            "An account's real-time session streams nothing: its hourly reconnect budget is "
            "spent, it has no approval key, or KIS refuses the session (OPSP8996: another "
            "session holds the app key) for `[track_b] unhealthy_after_s`. Its slots fail "
            "over to the other accounts, so Track B watches fewer symbols."
        ),
        action=(
            "`observer ctl status` shows the account; for a key problem check the token job "
            "and `observer ctl run token`; for OPSP8996 stop whatever else uses the app key. "
            "Track B retries by itself (`[kis.stream] reconnects_per_hour`)."
        ),
        resolved=(
            "when KIS confirms a session of the account again (or the account is removed from"
            " the configuration)"
        ),
    ),
    AlertKind(
        code="track_b_bad_frames",
        severities=("error",),
        raised_by="track_b",
        subject="the account's alias",
        meaning=(
            "An account's session received more than `[kis.stream] bad_frames_per_minute` "
            "unreadable WebSocket frames within a minute (oversized, not UTF-8, refused whole"
            " by the decoder, or of an unknown layout). The session reconnects once, then "
            "drops and counts the bad frames; their data is lost (trades become gaps "
            "recovered from minute bars)."
        ),
        action=(
            "Look for a proxy or network fault between the host and KIS, or a KIS format "
            "change (`observer kis check`); frames larger than expected: `[kis.stream] "
            "max_frame_bytes`. The raw frames are in the journal (`observer journal list`)."
        ),
        resolved="when a minute passes without a bad frame on that account",
    ),
    AlertKind(
        code="track_b_data_rejected",
        severities=("error",),
        raised_by="track_b",
        subject='"account/kind/symbol" (after 10 symbols of a kind, "account/kind/*")',
        meaning=(
            "A record KIS sent decoded but failed Track B's checks (kind: unregistered, "
            "price_not_positive, volume_not_positive, outside_session or outside_limits), so "
            "it was not stored; it is kept in `realtime_rejections`, and a refused trade of a"
            " watched symbol becomes a gap recovered from minute bars."
        ),
        action=(
            "By kind: outside_session: check the host clock (NTP) and `[track_b] "
            "exchange_hours`; outside_limits: the day's limits from Track A's snapshots; "
            "unregistered or not positive: KIS or a proxy sending wrong data. Read the rows "
            "in `realtime_rejections`."
        ),
        resolved=(
            "when no record of that subject has been refused for 10 minutes, judged as the "
            "account's data arrives"
        ),
    ),
    AlertKind(
        code="track_b_data_undecoded",
        severities=("error",),
        raised_by="track_b",
        subject="the account's alias",
        meaning=(
            "Data KIS sent on this account could not be read (a trade or book record the "
            "decoder refused, or a whole frame dropped as oversized or malformed; unknown "
            "layouts are track_b_layout_unknown): it is not stored, it is kept in "
            "`realtime_rejections`, and refused trades of watched symbols become gaps "
            "recovered from minute bars. One alert per episode, however many records."
        ),
        action=(
            "`observer kis check` shows whether KIS changed its format; a release that reads "
            "it can re-parse the day's frames with `observer journal replay --date D --db "
            "sqlite:///scratch.db`. A few damaged frames need nothing."
        ),
        resolved="when the account's data has been read for 10 minutes without a refusal",
    ),
    AlertKind(
        code="track_b_degraded",
        severities=("warning",),
        raised_by="track_b",
        subject="",
        meaning=(
            "The context sync before full operation could not read Track A's snapshots "
            "(database failure) or found none: Track B's first slots are filled by market cap"
            " instead of by the opening's movers until triggers fire. A failed read is "
            "retried."
        ),
        action=(
            "Check that Track A ran this morning (`observer track-a cycles`) and that the "
            "database answers (`observer ctl status`); usually nothing, as live triggers take"
            " over the slots."
        ),
        resolved=(
            "when a late sync succeeds, when the first live trigger fires, or at the end of "
            "Track B's day (or its stop)"
        ),
    ),
    AlertKind(
        code="track_b_feed_lagging",
        severities=("warning",),
        raised_by="track_b",
        subject="the account's alias",
        meaning=(
            "An account's trades arrive more than `[track_b] lag_alert_s` after they "
            "happened, in continuous trading. Data is still stored, but a symbol leaving its "
            "slot meanwhile gets a delivery-lag gap."
        ),
        action=(
            "Check the host's load and its network to KIS (`observer ctl status` shows each "
            "account's delivery lag); raise `[track_b] lag_alert_s`, or set it to 0 to turn "
            "the alert off."
        ),
        resolved=(
            "when the account's frames have been within half the limit for as long as the "
            "limit (or lag alerts are off after a restart)"
        ),
    ),
    AlertKind(
        code="track_b_halted",
        severities=("info",),
        raised_by="track_b",
        subject="",
        meaning=(
            "A streamed symbol is halted (per Track A's snapshot, the trade stream or KRX's "
            "market-status record; the message and context name it): it was released from its"
            " slot and is kept out of the slots until it trades again. A pin keeps its slot."
        ),
        action=(
            "Nothing; `observer ctl slots list` shows the bar. Which snapshot field means "
            "halted: `[kis] halt_from`."
        ),
        resolved=(
            "never: an info note, never open (the bar lifts by itself when the symbol trades again)"
        ),
    ),
    AlertKind(
        code="track_b_layout_unknown",
        severities=("error",),
        raised_by="track_b",
        subject='"TR/width": the real-time TR and its record width',
        meaning=(
            "KIS sends a real-time TR in a record width the client does not know: every such "
            "frame is refused whole, kept in `realtime_rejections` (kind unknown_layout), "
            "nothing of it stored as data; the trades missed are recovered from the minute "
            "bars."
        ),
        action=(
            "`observer kis check` names the width; a release that knows the layout reads it "
            "(then `observer journal replay` can re-parse the day's frames into a scratch "
            "database)."
        ),
        resolved=(
            "when that TR's frames have read in a known layout for 10 minutes without another"
            " of that width"
        ),
    ),
    AlertKind(
        code="track_b_limit_locked",
        severities=("info",),
        raised_by="track_b",
        subject="",
        meaning=(
            "A streamed symbol is locked at its daily upper or lower price limit (a Track A "
            "snapshot at the limit, or trades there for `[track_b] limit_lock_s`): it was "
            "released from its slot and is kept out until it trades off the limit. A pin "
            "keeps its slot."
        ),
        action=(
            "Nothing; `observer ctl slots list` shows the bar. `[track_b] limit_lock_s` sets "
            "how long trades must stay at the limit."
        ),
        resolved=(
            "never: an info note, never open (the bar lifts by itself when the price leaves "
            "the limit)"
        ),
    ),
    AlertKind(
        code="track_b_overflow",
        severities=("warning", "critical"),
        raised_by="track_b",
        subject="",
        meaning=(
            "Over the last hour, more candidates than the `[track_b] overflow_alert_pct` "
            "levels (10 % warning, 20 % critical; the critical not counting the morning "
            "hand-over) found no free slot: Track B is missing symbols that triggered."
        ),
        action=(
            "Add registrations: more `[[kis.accounts]]`, or fewer per symbol (the rows of "
            "`[track_b.feeds]`, `nextrade`); or tune "
            "`replacement_threshold`, `min_hold_s` and the triggers in `[track_b]`."
        ),
        resolved=(
            "when the share falls back to half the warning level, or at the end of Track B's "
            "day (or its stop)"
        ),
    ),
    AlertKind(
        code="track_b_pin_standing_unknown",
        severities=("warning",),
        raised_by="track_b",
        subject="the pinned symbol",
        meaning=(
            "A pin outside the day's universe (an ETF, a stock below the price floor) has no "
            "Nextrade standing from the universe job, and KIS's answer to Track B's own ask "
            "(CTPF1002R) failed: the pin holds KRX's feeds alone, its Nextrade trades (if "
            "Nextrade trades it) not recorded. Asked again every minute."
        ),
        action=(
            "Check the first account's REST access (`observer kis check`, the token job's "
            "alerts); the pin holds KRX's feeds meanwhile."
        ),
        resolved="when KIS answers the pin's standing, or the pin is lifted",
    ),
    AlertKind(
        code="track_b_pins_unreadable",
        severities=("warning",),
        raised_by="track_b",
        subject="",
        meaning=(
            "The pins file `<data_dir>/track_b/pins.json` cannot be read (permissions, a "
            "folder in its place, the disk), or a bad one cannot be written back: Track B "
            "keeps the pins it last read and ignores pin changes."
        ),
        action=(
            "Fix the file's ownership, permissions or disk; `observer ctl slots list` shows "
            "the pins in force, `observer ctl slots pin CODE...` writes the file again."
        ),
        resolved=(
            "when this Track B reads the file again (a Track B restarted meanwhile sends no "
            "resolution: acknowledge it)"
        ),
    ),
    AlertKind(
        code="track_b_registration_limit",
        severities=("error",),
        raised_by="track_b",
        subject="",
        meaning=(
            "KIS answered OPSP0008 (session full) where Track B counted a free registration: "
            "that slot is closed for the day and its symbol released, so the account holds "
            "fewer symbols. Another session using the app key, or a limit below `[kis.stream] "
            "max_registrations`, is the usual cause."
        ),
        action=(
            "Stop anything else registering with the account's app key; if KIS's limit is "
            "really lower, lower `[kis.stream] max_registrations` and restart Track B "
            "(`observer ctl restart track_b`)."
        ),
        resolved="at the end of Track B's day (or its stop); an earlier day's at the next start",
    ),
    AlertKind(
        code="track_b_registration_refused",
        severities=("warning", "error"),
        raised_by="track_b",
        subject="",
        meaning=(
            "KIS refused to register a symbol's feed (a subscription), not data it sent: the "
            "symbol (in the context, with KIS's code) leaves its slot and is barred, for the "
            "day for `[track_b] refusal_permanent_codes`, else for a backoff. An error once "
            "refused symbols bar `[track_b] refused_error_share` of the slots."
        ),
        action=(
            "`observer ctl slots list` shows each bar and its code; unpin a symbol KIS "
            "rejects as invalid (`observer ctl slots unpin CODE`); many refusals at once: "
            "check the account with `observer ctl status` and `observer kis check`."
        ),
        resolved="at the end of Track B's day (or its stop); an earlier day's at the next start",
    ),
    AlertKind(
        code="track_b_registrations_mismatch",
        severities=("error",),
        raised_by="track_b",
        subject="the account alias",
        meaning=(
            "An account's session wanted registrations that differ from its slots (the "
            "account is in the context): a fault in Track B's own bookkeeping. It was "
            "repaired at once; meanwhile a symbol may have streamed without a slot, or a held"
            " one without all its feeds."
        ),
        action=("Nothing to repair; keep the track_b log around the alert for the maintainers."),
        resolved=(
            "when a later check (after each evaluation) finds the account's registrations "
            "matching its slots; an account no longer configured, at the next run's start"
        ),
    ),
    AlertKind(
        code="track_b_restarted",
        severities=("warning",),
        raised_by="track_b",
        subject="",
        meaning=(
            "Track B started again during the day holding slots an earlier run left (it "
            "died): each was taken back, or released if read late, with a process_restart gap"
            " whose minutes are recovered from minute bars."
        ),
        action=(
            "Find why the earlier run ended (its log, `observer ctl status`); the gaps "
            "recover by themselves (`observer gap-recovery report --date D`)."
        ),
        resolved="at the end of Track B's day (or its stop); an earlier day's at the next start",
    ),
    AlertKind(
        code="track_b_resume_failed",
        severities=("error",),
        raised_by="track_b",
        subject="",
        meaning=(
            "At KRX's close, what an earlier Track B of the day left was still unread (the "
            "writer had not stored it, or the database failed the read): slots it held were "
            "never released and their process_restart gaps never opened."
        ),
        action=(
            "Check the writer and database (`observer ctl status`, `observer audit`), then "
            "reconcile the day so the missed minutes are found: `observer gap-recovery verify"
            " --date D`; acknowledge it."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="track_b_session_disagrees",
        severities=("warning",),
        raised_by="track_b",
        subject='"VENUE YYYY-MM-DD": the venue and trading day',
        meaning=(
            "A trade's MARKET_CLS_CODE names another session than the configured venue hours "
            "give for its time (first of the venue's day; later ones are counted). The record"
            " is stored with KIS's session; `[venues]` may be wrong for that day."
        ),
        action=(
            "Compare `[venues.krx]` / `[venues.nxt]` hours and `[calendar]` with the "
            "exchange's schedule for that day and correct them; if they are right, KIS labels"
            " otherwise than believed: tell the maintainers. Then acknowledge it."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="track_b_shards",
        severities=("critical",),
        raised_by="supervisor (store host)",
        subject='"split", "shard K/N", or "shards K,.../N on no host"',
        meaning=(
            "Track B's symbols are not dealt out exactly once between the hosts: a shard on "
            "two hosts stores every tick twice, a shard on none is never streamed, and hosts "
            "splitting different ways do both."
        ),
        action=(
            "Fix [track_b] shard on the hosts so every shard K/N is on exactly one host with "
            "the same N, and restart each host; `observer hosts` shows the rosters."
        ),
        resolved=(
            "when the hosts' latest rosters (each supervisor publishes one at its start and "
            "daily; those of the last 36 h count) no longer show the overlap, at the store "
            "supervisor's next database reading"
        ),
    ),
    AlertKind(
        code="track_b_stream_stale",
        severities=("warning",),
        raised_by="track_b",
        subject="the account's alias",
        meaning=(
            "An account's session held registrations in continuous trading but delivered no "
            "data for `[track_b] stale_after_s` (in the pre- and after-markets "
            "`stale_after_thin_s`); Track B restarted it once. A market-wide halt also "
            "causes it."
        ),
        action=(
            "Usually nothing; if it repeats, check the account in `observer ctl status` and "
            "KIS's service status; `[track_b] stale_after_s` and `stale_after_thin_s` set the "
            "limits (0: off; not judged in the thin sessions)."
        ),
        resolved="when data flows again on that account",
    ),
    AlertKind(
        code="track_b_vi_feed_refused",
        severities=("warning",),
        raised_by="track_b",
        subject="the account's alias (the first account)",
        meaning=(
            "KIS refused the whole-market VI feed (`[track_b] vi_feed`) registered under the "
            "business date: today the market's VIs come only from the watched names' market "
            "status. The slots go on; it is asked again when an auction's registrations "
            "change."
        ),
        action=(
            "`observer kis check` (its H0STVIC0 key row) shows whether KIS takes the date; if"
            ' not, set `[track_b] vi_feed = "off"`.'
        ),
        resolved="when KIS takes the VI feed, or at a start with the VI feed off",
    ),
    AlertKind(
        code="universe_build_slow",
        severities=("warning",),
        raised_by="supervisor",
        subject="",
        meaning=(
            "The universe job has been running more than 300 s: the day's universe may not be"
            " ready before the 07:50 warm-up."
        ),
        action=(
            "Watch the job in `observer ctl status` and var/log/universe.log; if it fails, "
            "`observer ctl run universe` before the warm-up."
        ),
        resolved="when the universe job stops running",
    ),
    AlertKind(
        code="universe_failed",
        severities=("critical",),
        raised_by="universe",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "The day's universe could not be built and no earlier one reads: Track A has no "
            "universe for the day. The job exits 1 and the supervisor retries it."
        ),
        action=(
            "Read the cause in the message (`observer master-file status` for missing "
            "masters, `observer ctl status` for the accounts); fix it, then `observer ctl run"
            " universe`."
        ),
        resolved="when a later build of that day succeeds",
    ),
    AlertKind(
        code="universe_file_restored",
        severities=("warning",),
        raised_by="universe",
        subject="",
        meaning=(
            "The day's universe file was missing; it was rewritten from the database's copy, "
            "so the day's universe is unchanged."
        ),
        action=(
            "Find out why the file went (a deleted data folder, an unreadable file set "
            "aside); then acknowledge it."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="universe_master_stale",
        severities=("warning",),
        raised_by="universe",
        subject="",
        meaning=(
            "The day's universe read KR masters installed before the previous session closed:"
            " halts and 관리종목 designations may be a day old in Track A's universe."
        ),
        action=(
            "Check the master-file job (`observer master-file status`, any "
            "`master_file_failed`); the day is not rebuilt, so fix it for the next day, then "
            "acknowledge."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="universe_members_failed",
        severities=("warning",),
        raised_by="universe",
        subject="",
        meaning=(
            "The universe left out candidates whose daily chart failed (asked twice) or whose"
            " master record is malformed; within `[universe] max_failed_pct` they do not stop"
            " the build, but Track A goes without them all day."
        ),
        action=(
            "Check the names in the message for large stocks and the cause (KIS errors, "
            "`master_records_malformed`); the day is not rebuilt. Acknowledge once noted."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="universe_nxt_unknown",
        severities=("warning",),
        raised_by="universe",
        subject="",
        meaning=(
            "KIS did not answer some members' Nextrade standing (CTPF1002R) twice; they stay "
            "unknown (NULL) in the day's record, since KIS keeps no history of it."
        ),
        action=(
            "Nothing recovers it for the day; the message names the members and the error. "
            "Acknowledge once noted."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="universe_reused",
        severities=("critical",),
        raised_by="universe",
        subject="the trading day (YYYY-MM-DD)",
        meaning=(
            "The day's universe build failed and the newest earlier universe was published in"
            " its place: Track A follows yesterday's (or older) stocks. Raised again if a "
            "rerun fails too."
        ),
        action=(
            "Fix the cause in the message, then rebuild before the 07:50 warm-up with "
            "`observer ctl run universe` (the 07:00 run also tries); after the warm-up the "
            "day keeps the reused one."
        ),
        resolved=(
            "when a rerun builds the day's own universe before the warm-up; otherwise "
            "acknowledge it (observer alerts ack ID)"
        ),
    ),
    AlertKind(
        code="universe_small",
        severities=("warning",),
        raised_by="universe",
        subject="",
        meaning=(
            "The day's universe (built or reused) has fewer symbols than `[universe] "
            "min_symbols` (100): Track A covers fewer stocks than expected."
        ),
        action=(
            "Check the candidates and filters (`[universe] min_prev_close`, "
            "`exclude_administrative`) and the KR master files; the day is not rebuilt. "
            "Acknowledge once understood."
        ),
        resolved="never: acknowledge it (observer alerts ack ID)",
    ),
    AlertKind(
        code="whole_market_on_two_hosts",
        severities=("critical",),
        raised_by="supervisor (store host)",
        subject="the program's name",
        meaning=(
            "A whole-market program (track_a, universe, master_file, enrich, etf_list, "
            "etf_daily, etf_holdings, etf_backfill) is enabled on two or more hosts: both "
            "spend their KIS budget collecting the same rows."
        ),
        action=(
            "Set enabled = false under [programs.NAME] on all hosts but one and restart their"
            " supervisors; `observer hosts` shows each host's roster."
        ),
        resolved=(
            "when the hosts' latest rosters (each supervisor publishes one at its start and "
            "daily; those of the last 36 h count) no longer show the overlap, at the store "
            "supervisor's next database reading"
        ),
    ),
)

CATALOGUE: Mapping[str, AlertKind] = MappingProxyType({k.code: k for k in _KINDS})


def markdown() -> str:
    """The catalogue as a Markdown table, one row per code in code order (docs/operations.md)."""
    rows = [
        "| code | severity | raised by | subject | meaning | what to do | ends |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in sorted(_KINDS, key=lambda k: k.code):
        cells = (
            f"`{kind.code}`",
            ", ".join(kind.severities),
            kind.raised_by,
            kind.subject or "(the whole system)",
            kind.meaning,
            kind.action,
            kind.resolved,
        )
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
