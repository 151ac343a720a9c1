"""What a mirror answers: A codes and TXT texts, built from a dataset's (A, TXT) values.

A dataset's values are numbered once while it is read; the interval tables store only an
*answer id* per listed interval. Ids below ``len(values)`` are one value; higher ids are
groups of values (an ip4set or dnset key listed more than once, where rbldnsd answers every
distinct A and TXT). The TXT is a template: ``$`` becomes the queried address (the matched
entry's name in a dnset), ``$$`` a dollar sign, ``$0``..``$9`` the dataset's substitution
variables, and a base template (``$=``) wraps every entry's own text, exactly as rbldnsd
expands them when it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from checks.dnsbl.mirror.syntax import Value, ip4_text

#: interval or name value meaning "excluded: not listed, whatever a wider entry says"
EXCLUDED = -1
#: rbldnsd answers at most this many bytes of TXT after substitution
TXT_ANSWER_MAX = 254
#: what an entry without any value answers (rbldnsd's built-in default: 127.0.0.2, no TXT)
BUILTIN_DEFAULT = Value(0x7F000002, "")


@dataclass(frozen=True, slots=True)
class Answer:
    """What rbldnsd answers for one listed address or name.

    ``codes`` are the A records (``"127.0.0.2"``), ``texts`` the TXT records after
    substitution (possibly none), both without duplicates; their order carries no
    meaning (rbldnsd's own order follows its memory layout).
    """

    codes: tuple[str, ...]
    texts: tuple[str, ...] = ()

    @property
    def code(self) -> str:
        return self.codes[0]

    @property
    def text(self) -> str:
        """All TXT records in one string, as a DNS check reports its reason."""
        return " ".join(self.texts)


def substitute(template: str, subject: str, variables: Sequence[str | None], base: str) -> str:
    """The TXT rbldnsd answers for ``template`` and the queried ``subject`` (Latin-1 text).

    With a base template, an entry's own text becomes ``$=`` inside it (the subject when the
    entry has none); a template starting with ``=`` opts out of the base.
    """
    if template.startswith("="):
        txt = own = template[1:]
    elif base:
        own = template or subject
        txt = base
    else:
        txt = own = template
    out: list[str] = []
    i = 0
    n = len(txt)
    while True:
        j = txt.find("$", i)
        if j < 0:
            out.append(txt[i:])
            break
        out.append(txt[i:j])
        k = j + 1
        nxt = txt[k] if k < n else ""
        if nxt == "$":
            out.append("$")
            k += 1
        elif nxt.isdigit() and nxt.isascii():
            var = variables[int(nxt)]
            out.append(var if var is not None else txt[j : k + 1])
            k += 1
        elif nxt == "=":
            out.append(own)
            k += 1
        else:
            out.append(subject)  # the character after a lone "$" is kept as text
        i = k
    return "".join(out)[:TXT_ANSWER_MAX]


def _display(latin1: str) -> str:
    """A TXT as people read it: the file's bytes decoded as UTF-8."""
    return latin1.encode("latin-1").decode("utf-8", "replace")


class Values:
    """The numbered (A, TXT) values of one dataset and the answers they make.

    Add values while reading (:meth:`value`), then groups (:meth:`group`) once every value
    is known; :meth:`answer` builds what rbldnsd would send for a queried subject.
    """

    def __init__(self) -> None:
        self._values: list[Value] = []
        self._value_ids: dict[Value, int] = {}
        self._groups: list[tuple[int, ...]] = []
        self._group_ids: dict[tuple[int, ...], int] = {}
        #: ``$0``..``$9``; the first definition in a dataset wins, as in rbldnsd
        self.variables: list[str | None] = [None] * 10
        #: the ``$=`` base template ("" when none)
        self.base = ""
        self._cache: dict[int, Answer] = {}

    def __len__(self) -> int:
        return len(self._values)

    def value(self, v: Value) -> int:
        """The id of value ``v`` (equal values share one id, as rbldnsd's dedup does)."""
        got = self._value_ids.get(v)
        if got is None:
            if self._groups:
                raise RuntimeError("values are closed once groups exist")
            got = self._value_ids[v] = len(self._values)
            self._values.append(v)
        return got

    def group(self, ids: Sequence[int]) -> int:
        """The answer id of several values listed for one key (sorted, distinct ids)."""
        if len(ids) == 1:
            return int(ids[0])
        key = tuple(int(i) for i in ids)
        got = self._group_ids.get(key)
        if got is None:
            got = self._group_ids[key] = len(self._values) + len(self._groups)
            self._groups.append(key)
        return got

    def members(self, answer_id: int) -> tuple[Value, ...]:
        """The values behind one answer id, in file order."""
        if answer_id < len(self._values):
            return (self._values[answer_id],)
        return tuple(self._values[i] for i in self._groups[answer_id - len(self._values)])

    def codes(self, answer_id: int) -> tuple[str, ...]:
        """The A codes of one answer id (no substitution needed)."""
        return tuple(dict.fromkeys(ip4_text(v.a) for v in self.members(answer_id)))

    def _constant(self, members: tuple[Value, ...]) -> bool:
        return not self.base and not any("$" in v.txt for v in members)

    def answer(self, answer_id: int, subject: str) -> Answer:
        """What rbldnsd answers for ``subject`` (an address or name) under ``answer_id``."""
        cached = self._cache.get(answer_id)
        if cached is not None:
            return cached
        members = self.members(answer_id)
        codes = tuple(dict.fromkeys(ip4_text(v.a) for v in members))
        texts = (substitute(v.txt, subject, self.variables, self.base) for v in members)
        ans = Answer(codes, tuple(dict.fromkeys(_display(t) for t in texts if t)))
        if self._constant(members):
            self._cache[answer_id] = ans
        return ans
