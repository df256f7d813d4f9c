"""Changes held for an operator: when to hold one, holding it, and approving or rejecting it.

A change that looks like a broken file (too many listings new, removed or changed, too few
records, a large size decrease) is held in ``reviews/<id>`` with `MasterFileReview(held)`
and a critical alert (subject the review id); never applied without a decision, and not
held twice. ``approve`` re-diffs against the database and applies; ``reject`` records the
contents as rejected. Decided or superseded, the review's alert is resolved.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import msgspec

from bus.events import Alert, AlertResolved, MasterFileChecked, MasterFileReview
from observer.calendar.phases import KST
from observer.cli.support import open_alert_subjects
from observer.errors import MasterFileError
from observer.reference.instruments import Listing, MasterFile, master_file
from workers.master_file import SOURCE
from workers.master_file.context import Run, Services
from workers.master_file.diff import Diff, diff
from workers.master_file.files import Current, FileState, Review, sha256_of
from workers.master_file.outcome import SAMPLE, FileOutcome, sample
from workers.master_file.quality import assess
from workers.master_file.reading import read_archive

__all__ = ["HELD", "MAX_CHANGED_PCT", "Reviews", "review_event"]

HELD = "master_review_held"  # critical: a change awaits an operator; its subject: the review

# A layout KIS changed without notice, each value still well-formed, rewrites the fields of
# nearly every listing at once; a real day renames or reclassifies a handful. Percent of the
# market's active listings.
MAX_CHANGED_PCT = 20.0


class Reviews:
    """The review workflow, on a process's `Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def reasons(self, d: Diff, known: dict[str, tuple[Listing, bool]], records: int) -> list[str]:
        """Reasons to hold a change for review: a broken file is likelier than such a market.

        Too many new, removed or changed listings at once, or too few records for the active
        ones.
        """
        limits = self.services.limits
        reasons = []
        if len(d.new) > limits.max_new:
            reasons.append(f"{len(d.new)} new listings (more than {limits.max_new})")
        if len(d.removed) > limits.max_removed:
            reasons.append(f"{len(d.removed)} removed listings (more than {limits.max_removed})")
        active = sum(1 for _, is_active in known.values() if is_active)
        if active and 100 * len(d.changed) / active > MAX_CHANGED_PCT:
            reasons.append(
                f"{len(d.changed)} of {active} active listings changed (more than "
                f"{MAX_CHANGED_PCT:g}%: has the file's layout changed?)"
            )
        if active and 100 * (active - records) / active > limits.max_shrink_pct:
            shrink = 100 * (active - records) / active
            reasons.append(f"{records} records for {active} active listings ({shrink:.1f}% fewer)")
        return reasons

    def awaiting(self, state: FileState, content_sha256: str) -> list[str]:
        """The reason to hold contents again that already await an operator, if they do.

        A run that finds no reason of its own (a forced refresh, changed limits, a database
        that moved) never applies a held change, nor closes its review, behind the operator.
        """
        if not state.pending_review:
            return []
        pending, _ = self.services.files.review(state.pending_review)
        if pending.content_sha256 != content_sha256:
            return []
        return [f"the same contents await review {pending.review_id}", *pending.reasons]

    def supersede(self, file: MasterFile, state: FileState, why: str) -> FileState:
        """Close the review pending for ``file``, if any: ``state`` without it."""
        if not state.pending_review:
            return state
        s = self.services
        review, _ = s.files.review(state.pending_review)
        s.publish(
            review_event(review, "superseded", why), *_held_over(s, review, f"superseded: {why}")
        )
        s.files.close_review(review.review_id)
        return msgspec.structs.replace(state, pending_review="")

    def hold(
        self,
        run: Run,
        fresh: Current,
        d: Diff,
        archive: Path,
        reasons: list[str],
        outcome: FileOutcome,
    ) -> FileOutcome:
        """Keep the downloaded ``archive`` for an operator instead of applying it."""
        s, file, state = self.services, run.file, run.state
        outcome.action = "hold"
        outcome.reason = "; ".join(reasons)
        if state.pending_review:
            pending, _ = s.files.review(state.pending_review)
            if pending.content_sha256 == fresh.content_sha256:  # the same change again
                archive.unlink()
                outcome.review_id = pending.review_id
                s.publish(_held_check(run, outcome, fresh))
                return outcome
            state = self.supersede(file, state, "a newer change was held")
        now = s.clock.now_ns()
        stamp = datetime.fromtimestamp(now / 1e9, KST).strftime("%Y%m%dT%H%M%S")
        review = Review(
            review_id=f"{file.market.lower()}-{stamp}",
            market=file.market,
            file_name=file.name,
            held_ns=now,
            reasons=tuple(reasons),
            records=fresh.records,
            sha256=fresh.sha256,
            content_sha256=fresh.content_sha256,
            added=len(d.new),
            modified=len(d.changed),
            removed=len(d.removed),
            sample_new=tuple(f"{x.symbol} {x.name or x.name_en}" for x in d.new[:SAMPLE]),
            sample_changed=tuple(f"{x.symbol} {', '.join(f)}" for x, f in d.changed[:SAMPLE]),
            sample_removed=tuple(f"{x.symbol} {x.name or x.name_en}" for x in d.removed[:SAMPLE]),
            etag=fresh.etag,
            last_modified=fresh.last_modified,
        )
        s.files.hold(review, archive)
        outcome.review_id = review.review_id
        s.publish(
            review_event(review, "held", outcome.reason),
            Alert(
                severity="critical",
                code=HELD,
                message=(
                    f"{file.name} held for review {review.review_id}: {outcome.reason}; "
                    f"`observer master-file review --approve {review.review_id}` or --reject"
                ),
                context={"market": file.market, "file": file.name, "review": review.review_id},
                subject=review.review_id,
            ),
            _held_check(run, outcome, fresh),
        )
        s.save(file, state, pending_review=review.review_id, failures=0, checked_ns=now)
        return outcome

    def approve(self, review_id: str) -> FileOutcome:
        """Apply a held change as it is now against the database, and make its file current."""
        s = self.services
        started = time.monotonic()
        review, archive = s.files.review(review_id)
        file = master_file(review.market)
        if sha256_of(archive) != review.sha256:
            raise MasterFileError(f"{archive} does not match review {review_id}; reject it")
        parsed = read_archive(file, archive)
        known = s.known(file)
        d = diff(parsed.listings, parsed.comparable(known))
        outcome = FileOutcome(
            file.market,
            file.name,
            "approve",
            f"review {review_id} approved",
            parsed.records,
            len(d.new),
            len(d.changed),
            len(d.removed),
            assess(parsed.listings, len(parsed.malformed)).complete_pct,
            review_id=review_id,
            changes=sample(d),
        )
        run = Run(file, s.files.state(file), started=started)
        fresh = Current(
            archive.stat().st_size,
            review.sha256,
            parsed.content_sha256,
            parsed.records,
            review.etag,
            review.last_modified,
            s.clock.now_ns(),
        )
        s.publish(*d.events(initial=not known))
        s.publish(
            review_event(review, "approved", "approved by an operator"),
            *_held_over(s, review, "approved by an operator"),
            run.elapsed(outcome).checked(
                run.state.current,
                fresh,
                remote_size=fresh.size,
                changed=not d.empty,
                downloaded=False,
            ),
        )
        s.install(file, archive, fresh, msgspec.structs.replace(run.state, pending_review=""))
        s.files.close_review(review_id)
        return outcome

    def reject(self, review_id: str) -> FileOutcome:
        """Drop a held change; the same contents are not held again."""
        s = self.services
        review, _ = s.files.review(review_id)
        file = master_file(review.market)
        assert s.producer is not None
        s.publish(
            review_event(review, "rejected", "rejected by an operator"),
            *_held_over(s, review, "rejected by an operator"),
        )
        s.producer.flush()
        state = s.files.state(file)
        s.save(file, state, pending_review="", rejected_sha256=review.content_sha256)
        s.files.close_review(review_id)
        return FileOutcome(
            file.market,
            file.name,
            "reject",
            f"review {review_id} rejected",
            review.records,
            review_id=review_id,
        )


def _held_check(run: Run, outcome: FileOutcome, fresh: Current) -> MasterFileChecked:
    """A held file changes nothing in use: the check names the file still current."""
    return run.elapsed(outcome).checked(
        run.state.current,
        run.state.current,
        remote_size=fresh.size,
        changed=True,
        downloaded=True,
    )


def _held_over(s: Services, review: Review, why: str) -> list[AlertResolved]:
    """The end of the review's ``master_review_held``: it awaits the operator no more.

    Resolved only if open (a resolution of nothing goes to every channel): the alert of the
    review's id, and one raised without a subject (before alerts named their review), which
    the first decision ends. When the database cannot say, the review's own is resolved.
    """
    found = open_alert_subjects(s.settings, SOURCE, HELD)
    subjects = [review.review_id] if found is None else sorted({review.review_id, ""} & found)
    return [
        AlertResolved(
            code=HELD,
            severity="critical",
            subject=subject,
            message=f"{review.file_name}: review {review.review_id} {why}",
        )
        for subject in subjects
    ]


def review_event(review: Review, state: str, reason: str) -> MasterFileReview:
    """The bus event of a review's ``state`` ("held", "approved", ...)."""
    return MasterFileReview(
        review_id=review.review_id,
        market=review.market,
        file_name=review.file_name,
        state=state,  # type: ignore[arg-type]
        reason=reason,
        added=review.added,
        modified=review.modified,
        removed=review.removed,
        records=review.records,
        sha256=review.sha256,
    )
