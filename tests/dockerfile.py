"""A small Dockerfile reader for the deployment tests: instructions with line continuations and
comments, stages, exec (JSON) and shell forms, ENV pairs, and `.dockerignore` matching.

Enough for this project's Dockerfile; heredocs and a non-default escape character are refused
rather than misread."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_INSTRUCTION = re.compile(r"([A-Za-z]+)(?:\s+(.*))?", re.DOTALL)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str  # everything after the keyword, continuations joined with a space
    line: int  # where it starts, 1-based

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form CMD/ENTRYPOINT/RUN/VOLUME..., or None (shell form)."""
        return exec_form(self.args)

    def flags(self) -> tuple[dict[str, str], list[str]]:
        """Leading `--name=value` flags (COPY --from=..., --chown=...) and the other words."""
        words = shlex.split(self.args)
        found: dict[str, str] = {}
        while words and words[0].startswith("--"):
            name, _, value = words.pop(0)[2:].partition("=")
            found[name] = value
        return found, words


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """Every ENV of this stage, later ones winning."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            values.update(env_pairs(instruction.args))
        return values


def exec_form(args: str) -> list[str] | None:
    text = args.strip()
    if not text.startswith("["):
        return None
    value = json.loads(text)  # a malformed array is an error, as Docker makes it one
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not a JSON array of strings: {text}")
    return value


def env_pairs(args: str) -> dict[str, str]:
    """`ENV a=1 b="two words"`, or the legacy `ENV key the value`."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ValueError(f"ENV word without '=': {word!r} in {args!r}")
        pairs[key] = value
    return pairs


def instructions(text: str) -> list[Instruction]:
    """Every instruction, in order: comment lines dropped (also inside continuations), lines
    ending in a backslash joined to the next."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            if re.match(r"#\s*escape\s*=", stripped) and not found and not pending:
                raise ValueError("a custom escape character is not supported")
            continue
        if not stripped:  # blank lines end nothing, not even inside a continuation
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical = " ".join(part for part in pending if part)
        pending = []
        match = _INSTRUCTION.fullmatch(logical)
        if match is None:
            raise ValueError(f"line {start}: not an instruction: {logical!r}")
        if "<<" in logical and match.group(1).upper() in ("RUN", "COPY"):
            raise ValueError(f"line {start}: heredocs are not supported")
        found.append(Instruction(match.group(1).upper(), (match.group(2) or "").strip(), start))
    if pending:
        raise ValueError("the Dockerfile ends inside a line continuation")
    return found


def stages(text: str) -> list[Stage]:
    """The build stages in order; the last one is the image."""
    result: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            _, words = instruction.flags()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(words[0], name))
        elif not result:
            if instruction.keyword != "ARG":
                raise ValueError(f"line {instruction.line}: {instruction.keyword} before FROM")
        else:
            result[-1].instructions.append(instruction)
    return result


def healthcheck_command(instruction: Instruction) -> list[str]:
    """The command of `HEALTHCHECK [--options] CMD ...` (exec form, or the shell form's words)."""
    head, _, command = instruction.args.partition("CMD")
    if not command or any(not word.startswith("--") for word in head.split()):
        raise ValueError(f"unexpected HEALTHCHECK: {instruction.args}")
    return exec_form(command) or ["/bin/sh", "-c", command.strip()]


def dockerignore_patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether `.dockerignore` keeps `path` (relative, with /) out of the build context: the
    last matching pattern wins, `!` re-includes, and excluding a folder excludes its contents."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        options = [pattern, pattern[3:]] if pattern.startswith("**/") else [pattern]
        if any(fnmatch.fnmatchcase(c, p) for c in candidates for p in options):
            ignored = not negate
    return ignored


def read(path: Path) -> list[Stage]:
    return stages(path.read_text(encoding="utf-8"))
