"""Conformance of the bounce parsers on the labelled third-party corpus (corpus/bounces).

Measured per source folder: (a) detection where ``is_bounce`` is labelled (a bounce found where
true, none where false), (b) recipients exact (set equality, lower-cased), (c) the status code
of the first labelled recipient, (d) hard/soft of that recipient. The test fails under the
floors below; the table is printed (``pytest -s``) and attached to the report as properties.

Reading the labels:

- Sisimai writes pseudo status codes ``X.0.9NN`` when the bounce carries no RFC 3463 code (it
  derives one from its reason). They are not RFC 3463 codes and a parser that reads codes cannot
  produce them (ours leaves the status empty when the text has none), so for those labels only
  the class ``X`` (permanent / transient) is compared, with the class our recipient carries:
  its status, else its SMTP reply code, else its action (failed 5, delayed 4).
- ``alt_labels`` (p5-sisimai's older label) counts as correct too.
- bounce_email's status ``unknown`` means "none": an empty status matches it.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from collectors.feedback.bounces import detect_bounce, is_delay
from collectors.feedback.model import Bounce, BouncedRecipient

FLOORS = {"detected": 0.95, "recipients": 0.90, "status": 0.85}

#: labels we judge wrong: file -> reason. Excluded from every measure for that file.
EXCLUDED: dict[str, str] = {
    "sisimai/lhost-amazonses-11.eml": "an Amazon SES *complaint* notification "
    "(notificationType Complaint): a complaint, which repmon files apart from bounces",
    "sisimai-not-bounce/rb-issue-368-bug.eml": "from postmaster, 'reject reason: "
    "Mailbox full' for a named address: a bounce; the label records that sisimai ignores it",
    # BounceParser labels any message it is handed as a bounce with zero reports; these four
    # are spam or virus mail from a person's address, with no delivery report in them.
    "bounceparser/spam-bogus-email-in-report.msg": "spam (From spammer@...), not a bounce",
    "bounceparser/spam-lots-of-bogus-addresses.msg": "spam (From spammer@...), not a bounce",
    "bounceparser/spam-with-image.msg": "spam (From spammer@...), not a bounce",
    "bounceparser/virus-caused-multiple-weird-reports.msg": "virus mail, not a bounce",
}

Missed = dict[str, list[str]]

_PSEUDO = re.compile(r"^([245])\.0\.9\d\d$")


@dataclass
class Tally:
    counts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    #: tallies that also receive every result added here (the total)
    also: list[Tally] = field(default_factory=list)

    def add(self, measure: str, ok: bool) -> None:
        for t in (self, *self.also):
            t.counts[measure][0] += int(ok)
            t.counts[measure][1] += 1

    def rate(self, measure: str) -> float:
        good, total = self.counts[measure]
        return good / total if total else 1.0


MEASURES = ("detected", "recipients", "status", "hard")


def _class_of(r: BouncedRecipient) -> str:
    """The class a recipient's failure carries: its status, else its reply code, else action."""
    if r.status:
        return r.status[0]
    if r.reply_code:
        return r.reply_code[0]
    return {"failed": "5", "delayed": "4"}.get(r.action, "")


def _status_ok(got: BouncedRecipient | None, want: str) -> bool:
    status = got.status if got else ""
    if want in ("unknown", ""):
        return status == ""
    m = _PSEUDO.match(want)
    if m:
        return got is not None and _class_of(got) == m.group(1)
    return status == want


def _first_labelled(bounce: Bounce, labels: dict[str, object]) -> BouncedRecipient | None:
    listed = labels.get("recipients")
    wanted = [str(r).lower() for r in listed] if isinstance(listed, list) else []
    by_address = {r.address: r for r in bounce.recipients}
    if wanted and wanted[0] in by_address:
        return by_address[wanted[0]]
    return bounce.recipients[0] if bounce.recipients else None


def _alternatives(labels: dict[str, object], key: str) -> list[object]:
    values = [labels[key]] if key in labels else []
    alt = labels.get("alt_labels")
    if isinstance(alt, dict):
        rows = alt.get("per_recipient") or []
        if rows and key in rows[0]:
            values.append(rows[0][key])
    return values


def score(path: Path, labels: dict[str, object], tally: Tally, misses: Missed) -> None:
    """Add one sample's results to ``tally`` (which spreads to its folder and the total)."""
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
    bounce = detect_bounce(msg)
    name = str(labels.get("_name"))
    if "is_bounce" in labels:
        # A delay notice is found, not missed, where a bounce is labelled (the sources label
        # temporary failures as bounces), and is no bounce where none is labelled.
        found_bounce = bounce is not None and not is_delay(bounce)
        ok = bounce is not None if labels["is_bounce"] else not found_bounce
        tally.add("detected", ok)
        if not ok:
            misses["detected"].append(name)
    if not labels.get("is_bounce"):
        return
    if labels.get("recipients"):
        want = {str(r).lower() for r in labels["recipients"]}  # type: ignore[attr-defined]
        got = {r.address for r in bounce.recipients} if bounce else set()
        tally.add("recipients", got == want)
        if got != want:
            misses["recipients"].append(f"{name} got={sorted(got)} want={sorted(want)}")
    first = _first_labelled(bounce, labels) if bounce else None
    statuses = [str(s) for s in _alternatives(labels, "status")]
    if statuses:
        ok = any(_status_ok(first, s) for s in statuses)
        tally.add("status", ok)
        if not ok:
            got_status = (first.status, first.reply_code, first.action) if first else None
            misses["status"].append(f"{name} got={got_status!r} want={statuses}")
    hards = _alternatives(labels, "hard_bounce")
    if hards and hards[0] is not None:
        ok = first is not None and first.hard in hards
        tally.add("hard", ok)
        if not ok:
            got_cat = (first.category, first.status) if first else None
            misses["hard"].append(f"{name} got={got_cat} want={labels.get('reason')}")


def measure(corpus: Path) -> tuple[dict[str, Tally], Tally, dict[str, list[str]]]:
    """Score every labelled sample: per-folder tallies, the total, and the misses by measure."""
    folder = corpus / "bounces"
    expected = json.loads((folder / "expected.json").read_text())
    total = Tally()
    per_folder: dict[str, Tally] = defaultdict(lambda: Tally(also=[total]))
    missed: dict[str, list[str]] = defaultdict(list)
    for name, labels in sorted(expected.items()):
        if name in EXCLUDED or not (folder / name).is_file():
            continue
        labels = dict(labels, _name=name)
        score(folder / name, labels, per_folder[name.split("/")[0]], missed)
    return per_folder, total, missed


def table(per_folder: dict[str, Tally], total: Tally) -> str:
    def cell(t: Tally, m: str) -> str:
        good, n = t.counts.get(m, (0, 0))
        return f"{good}/{n} {100 * good / n:5.1f}%" if n else "-"

    rows = [f"{'folder':26} " + " ".join(f"{m:>16}" for m in MEASURES)]
    for name in sorted(per_folder):
        t = per_folder[name]
        rows.append(f"{name:26} " + " ".join(f"{cell(t, m):>16}" for m in MEASURES))
    rows.append(f"{'ALL':26} " + " ".join(f"{cell(total, m):>16}" for m in MEASURES))
    return "\n".join(rows)


def test_corpus_bounces_conformance(
    corpus: Path, record_property: Callable[[str, object], None]
) -> None:
    per_folder, total, missed = measure(corpus)
    report = table(per_folder, total)
    print("\nBounce conformance on corpus/bounces\n" + report)
    record_property("bounce_conformance", report)
    for m in MEASURES:
        record_property(f"bounce_{m}_rate", round(total.rate(m), 4))
    low = {m: total.rate(m) for m, floor in FLOORS.items() if total.rate(m) < floor}
    assert not low, f"under the floors {FLOORS}: {low}\n{report}\nmisses: " + json.dumps(
        {m: missed[m][:20] for m in low}, indent=1
    )


def test_excluded_labels_exist(corpus: Path) -> None:
    expected = json.loads((corpus / "bounces" / "expected.json").read_text())
    assert set(EXCLUDED) <= set(expected)


def test_unlabelled_samples_do_not_crash(corpus: Path) -> None:
    """Every sample, labelled or not, parses to a bounce or to None without an exception."""
    folder = corpus / "bounces"
    expected = json.loads((folder / "expected.json").read_text())
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if not path.is_file() or name in expected or path.suffix in (".json", ".md"):
            continue
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        bounce = detect_bounce(msg)
        assert bounce is None or bounce.recipients, name


if __name__ == "__main__":  # pragma: no cover - a manual look at the misses
    import sys

    from tests.conftest import CORPUS

    folders, all_, miss = measure(CORPUS)
    print(table(folders, all_))
    for m in sys.argv[1:] or MEASURES:
        print(f"--- {m}")
        print("\n".join(miss[m]))
