"""n2p2 ``input.nn`` settings reader and writer (SPEC §2).

Text after ``#`` or ``!`` is dropped; the first word is the key; keys may repeat;
``symfunction`` is an alias of ``symfunction_short``. The reader keeps every line
(with its line number) so that errors can name ``file:line``, and so that a
potential can be written back with the user's own lines intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hdnnp.errors import ReadError

ALIASES = {"symfunction": "symfunction_short",
           # n2p2's aliases of nnp_type (2G / 4G HDNNP)
           "nnp_generation": "nnp_type", "nnp_type_gen": "nnp_type", "nnp_gen": "nnp_type"}

#: values of ``nnp_type`` (and its aliases) and the generation they mean
NNP_TYPES = {"2": 2, "2G-HDNNP": 2, "4": 4, "4G-HDNNP": 4}


@dataclass
class SettingsLine:
    key: str
    values: list[str]
    lineno: int
    raw: str


@dataclass
class Settings:
    """All keyword lines of an ``input.nn`` file, in order."""

    path: str = "<input.nn>"
    lines: list[SettingsLine] = field(default_factory=list)

    # -------------------------------------------------------------- reading
    @classmethod
    def read(cls, path: str | Path) -> "Settings":
        path = Path(path)
        from hdnnp.io.validation import read_text

        return cls.parse(read_text(path, "settings file (input.nn)"), str(path))  # bad bytes: file:line

    @classmethod
    def parse(cls, text: str, path: str = "<input.nn>") -> "Settings":
        s = cls(path=path)
        for lineno, raw in enumerate(text.splitlines(), start=1):
            content = raw
            for c in "#!":
                cut = content.find(c)
                if cut >= 0:
                    content = content[:cut]
            words = content.split()
            if not words:
                continue
            key = ALIASES.get(words[0], words[0])
            s.lines.append(SettingsLine(key, words[1:], lineno, raw.rstrip("\n")))
        return s

    # -------------------------------------------------------------- queries
    def __contains__(self, key: str) -> bool:
        return any(line.key == key for line in self.lines)

    def all(self, key: str) -> list[SettingsLine]:
        return [line for line in self.lines if line.key == key]

    def line(self, key: str) -> SettingsLine | None:
        """The last line with this key (n2p2 warns on duplicates and keeps one)."""
        found = self.all(key)
        return found[-1] if found else None

    def require(self, key: str) -> SettingsLine:
        line = self.line(key)
        if line is None:
            raise ReadError(self.path, None, f"required keyword {key!r} is missing")
        return line

    def error(self, line: SettingsLine | None, message: str) -> ReadError:
        return ReadError(self.path, None if line is None else line.lineno, message)

    def get_str(self, key: str, default: str | None = None) -> str | None:
        line = self.line(key)
        if line is None:
            return default
        if not line.values:
            raise self.error(line, f"keyword {key!r} needs a value")
        return line.values[0]

    def get_float(self, key: str, default: float | None = None) -> float | None:
        line = self.line(key)
        if line is None:
            return default
        if not line.values:
            raise self.error(line, f"keyword {key!r} needs a number")
        try:
            v = float(line.values[0])
        except ValueError:
            raise self.error(line, f"keyword {key!r}: expected a number, found {line.values[0]!r}") from None
        if v != v or v in (float("inf"), float("-inf")):
            raise self.error(line, f"keyword {key!r}: expected a finite number, found {line.values[0]!r}")
        return v

    def get_int(self, key: str, default: int | None = None) -> int | None:
        line = self.line(key)
        if line is None:
            return default
        if not line.values:
            raise self.error(line, f"keyword {key!r} needs an integer")
        try:
            return int(line.values[0])
        except ValueError:
            raise self.error(line, f"keyword {key!r}: expected an integer, found {line.values[0]!r}") from None

    def nnp_generation(self) -> int:
        """2 (short-range HDNNP, the default) or 4 (4G-HDNNP: charge equilibration + electrostatics)."""
        line = self.line("nnp_type")
        if line is None:
            return 2
        if not line.values or line.values[0] not in NNP_TYPES:
            found = line.values[0] if line.values else "nothing"
            raise self.error(line, f"nnp_generation: expected 2, 4, 2G-HDNNP or 4G-HDNNP, found {found!r} "
                                   "(3G and charge-only HDNNPs are not supported)")
        return NNP_TYPES[line.values[0]]

    def get_bool(self, key: str) -> bool:
        """Flag keywords: present means true (a value 0/false turns it off)."""
        line = self.line(key)
        if line is None:
            return False
        if line.values and line.values[0].lower() in ("0", "false", "no", "off"):
            return False
        return True

    # -------------------------------------------------------------- new settings from these
    # (settings are never edited in place: the user's parsed input.nn stays as read)
    def with_keyword(self, key: str, *values, comment: str = "") -> "Settings":
        """A copy in which all lines of ``key`` are replaced by one line (at the first one's place,
        else appended)."""
        vals = [str(v) for v in values]
        raw = (f"{key:<31s} " + " ".join(vals)).rstrip()
        if comment:
            raw = f"{raw:<46s} # {comment}"
        new = SettingsLine(key, vals, 0, raw)
        idx = next((i for i, line in enumerate(self.lines) if line.key == key), None)
        lines = [line for line in self.lines if line.key != key]
        if idx is None:
            lines.append(new)
        else:
            lines.insert(min(idx, len(lines)), new)
        return Settings(self.path, lines)

    def without(self, *keys: str) -> "Settings":
        """A copy without the lines of ``keys``."""
        return Settings(self.path, [line for line in self.lines if line.key not in keys])

    def with_lines_first(self, lines: list[SettingsLine]) -> "Settings":
        """A copy with ``lines`` in front (nnp-norm puts the normalisation at the top)."""
        return Settings(self.path, [*lines, *self.lines])

    def to_text(self, header: str = "") -> str:
        out = [header.rstrip("\n")] if header else []
        out += [line.raw for line in self.lines]
        return "\n".join(out) + "\n"

    def write(self, path: str | Path, header: str = "") -> None:
        Path(path).write_text(self.to_text(header), encoding="utf-8")
