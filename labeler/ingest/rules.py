"""Filename keyword rules: a data file maps words to classes; names are matched on whole tokens.

The rules file is plain text (see ``labeler/data/rules.txt``)::

    class: word, word, phrase of words, ...
    negate: not, no, ...

Tokens are the runs of letters in a name, split further at lower-to-upper case changes
(``HappyFace`` -> ``happy face``); digits and punctuation separate tokens. Matching is whole-token
and case-insensitive, so ``unhappy`` is its own token and never ``happy``.
"""

from __future__ import annotations

from labeler.errors import LabelerError

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Iterable, Optional

from labeler.types import LABELS, RuleMatch

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "data" / "rules.txt"
_NEGATE = "negate"
_WORD_RE = re.compile(r"^[^\W\d_]+( [^\W\d_]+)*$")


class RulesError(LabelerError, ValueError):
    """A rules file could not be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Rule:
    word: str  # normalised, tokens joined by one space
    label: str
    line: int

    @property
    def name(self) -> str:
        return f"{self.label}<-{self.word}"


@dataclass
class RuleSet:
    path: str
    rules: list[Rule]
    negations: frozenset[str] = field(default_factory=frozenset)
    labels: tuple[str, ...] = LABELS

    def __post_init__(self) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], Rule]]] = {}
        for r in self.rules:
            toks = tuple(r.word.split(" "))
            self._by_first.setdefault(toks[0], []).append((toks, r))
        for lst in self._by_first.values():
            lst.sort(key=lambda t: -len(t[0]))  # longest phrase first

    @property
    def source(self) -> str:
        return f"rules:{Path(self.path).name}"

    def match_tokens(self, tokens: list[str]) -> tuple[list[tuple[str, Rule]], list[str]]:
        hits: list[tuple[str, Rule]] = []
        negated: list[str] = []
        i = 0
        while i < len(tokens):
            found = None
            for toks, rule in self._by_first.get(tokens[i], ()):
                if tuple(tokens[i : i + len(toks)]) == toks:
                    found = (toks, rule)
                    break
            if found is None:
                i += 1
                continue
            toks, rule = found
            if i > 0 and tokens[i - 1] in self.negations:
                negated.append(f"{tokens[i - 1]} {rule.word}")
            else:
                hits.append((rule.word, rule))
            i += len(toks)
        return hits, negated

    def match(self, path: str | PurePath, include_folders: bool = False) -> RuleMatch:
        """Apply the rules to a file name (and, if asked, to its parent folder names)."""
        p = PurePath(str(path).replace("\\", "/"))
        parts = [p.stem]
        if include_folders:
            parts = [*p.parent.parts, p.stem]
        hits: list[tuple[str, Rule]] = []
        negated: list[str] = []
        for part in parts:
            h, n = self.match_tokens(tokenize(part))
            hits += h
            negated += n
        return _decide(hits, negated)


def _decide(hits: list[tuple[str, Rule]], negated: list[str]) -> RuleMatch:
    classes = sorted({r.label for _, r in hits})
    pairs = tuple((w, r.label) for w, r in hits)
    if not classes:
        return RuleMatch(label=None, state="none", matches=pairs, negated=tuple(negated))
    if len(classes) > 1:
        return RuleMatch(label=None, state="ambiguous", matches=pairs, negated=tuple(negated))
    return RuleMatch(label=classes[0], state="labeled", matches=pairs, negated=tuple(negated))


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def tokenize(text: str) -> list[str]:
    """Lower-cased letter runs of ``text``; camelCase and digits split tokens."""
    text = unicodedata.normalize("NFKC", text)
    text = _CAMEL.sub(" ", text)
    # apostrophes inside words ("don't", "isn't") are dropped, not split
    text = re.sub(r"(?<=\w)['’](?=\w)", "", text)
    return [t.casefold() for t in re.findall(r"[^\W\d_]+", text)]


def _norm_word(word: str) -> str:
    return " ".join(tokenize(word))


def parse_rules(text: str, path: str = "<rules>", labels: Iterable[str] = LABELS) -> RuleSet:
    labels = tuple(labels)
    rules: list[Rule] = []
    negations: set[str] = set()
    seen: dict[str, Rule] = {}
    seen_labels: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if ":" not in line:
            raise RulesError(
                f"{path}, line {lineno}: expected `class: word, word, ...`, found {raw.strip()!r} (no colon)."
            )
        head, body = line.split(":", 1)
        label = head.strip().casefold()
        if label != _NEGATE and label not in labels:
            raise RulesError(
                f"{path}, line {lineno}: unknown class {head.strip()!r}; expected one of "
                f"{', '.join(labels)} (or `negate`). Fix the spelling or remove the line."
            )
        if label in seen_labels:
            raise RulesError(f"{path}, line {lineno}: class {label!r} appears on two lines; merge them into one.")
        seen_labels.add(label)
        words = [w.strip() for w in body.split(",")]
        if not any(words):
            raise RulesError(f"{path}, line {lineno}: class {label!r} has no words; expected at least one after the colon.")
        for w in words:
            if not w:
                raise RulesError(f"{path}, line {lineno}: empty word (two commas in a row or a trailing comma).")
            norm = _norm_word(w)
            if not norm or not _WORD_RE.match(norm) or re.search(r"[\d_]|[^\w\s'’-]", w):
                raise RulesError(
                    f"{path}, line {lineno}: {w!r} is not a word or phrase of letters; digits and punctuation "
                    "cannot match because names are split into letter tokens."
                )
            if label == _NEGATE:
                if " " in norm:
                    raise RulesError(f"{path}, line {lineno}: negation {w!r} must be a single word.")
                negations.add(norm)
                continue
            if norm in seen:
                other = seen[norm]
                raise RulesError(
                    f"{path}, line {lineno}: word {w!r} is listed for {label!r} and already for "
                    f"{other.label!r} on line {other.line}; a word can name one class only."
                )
            rule = Rule(word=norm, label=label, line=lineno)
            seen[norm] = rule
            rules.append(rule)
    if not rules:
        raise RulesError(f"{path}: no rules found; expected lines of the form `class: word, word, ...`.")
    clash = negations & set(seen)
    if clash:
        raise RulesError(f"{path}: {', '.join(sorted(clash))} listed both as a negation and as a class word.")
    return RuleSet(path=str(path), rules=rules, negations=frozenset(negations), labels=labels)


#: a rules file larger than this is refused (the shipped one is about 2 KB)
MAX_RULES_BYTES = 1 << 20


def read_small_text(p: Path, what: str, cap: int, error: type[Exception], fix: str) -> str:
    """The UTF-8 text of the regular file ``p``, at most ``cap`` bytes. A missing file, a folder, a
    FIFO or device (``/dev/zero``: no read that never ends, no hang), a larger file or one that is not
    UTF-8 raises ``error`` with a one-line message."""
    import stat

    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise error(f"{what} not found: {p}. {fix}") from None
    except OSError as e:
        raise error(f"{what} {p}: cannot be read ({e.strerror}). {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or special file"
        raise error(f"{what} {p}: expected a regular text file, found {kind}. {fix}")
    if st.st_size > cap:
        raise error(f"{what} {p}: expected at most {cap:,} bytes, found {st.st_size:,}. {fix}")
    try:
        with open(p, "rb") as f:
            data = f.read(cap + 1)  # the size can lie (/proc files say 0) or grow
    except OSError as e:
        raise error(f"{what} {p}: cannot be read ({e.strerror}). {fix}") from None
    if len(data) > cap:
        raise error(f"{what} {p}: expected at most {cap:,} bytes, found more. {fix}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{what} {p}: not UTF-8 text ({e}); save it as UTF-8.") from None


def load_rules(path: Optional[str | Path] = None) -> RuleSet:
    p = Path(path) if path else DEFAULT_RULES
    text = read_small_text(p, "rules file", MAX_RULES_BYTES, RulesError,
                           "Pass an existing rules file with --rules, or omit it for the shipped rules.")
    return parse_rules(text, str(p))
