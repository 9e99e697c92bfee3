"""Readers for the deployment files, for checks that run without a Docker engine.

Small, strict re-implementations of what Docker and Compose do with these files, limited to the
features our files use: Dockerfile instructions (continuations, comments), `.dockerignore`
matching (last matching pattern wins, `!` re-includes, a matched directory covers its
contents), `.env` files and Compose variable interpolation (`$$`, `${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?error}`, `${VAR?error}`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case, e.g. "RUN"
    args: str  # the rest of the logical line, continuations joined
    line: int  # where it starts (1-based)


def dockerfile_instructions(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, comments dropped and `\\` continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, even inside a continued instruction
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            keyword, _, args = " ".join(pending).partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"{path}: the last instruction ends with a line continuation")
    return instructions


class DockerIgnore:
    """Decides which paths of the build context reach the image builder."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, str]] = []  # (excludes, pattern)
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = str(PurePosixPath(line.lstrip("!").strip().lstrip("/")))
            self.rules.append((not negated, pattern))

    def excluded(self, path: str) -> bool:
        """True when `path` (relative, with `/`) is left out of the build context."""
        result = False
        for excludes, pattern in self.rules:
            if _matches(pattern, path):
                result = excludes
        return result


def _matches(pattern: str, path: str) -> bool:
    """The pattern matches the path or one of its parent directories."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    regex = _glob_regex(pattern)
    return any(regex.fullmatch(prefix) for prefix in prefixes)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match (`*` and `?` stay inside one path segment) plus `**` for any depth."""
    out = []
    segments = pattern.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        chars = []
        for char in segment:
            chars.append({"*": "[^/]*", "?": "[^/]"}.get(char) or re.escape(char))
        out.append("".join(chars) + ("" if last else "/"))
    return re.compile("".join(out))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a `.env` file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key] = value.strip()
    return values


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    """A `${VAR:?...}` or `${VAR}` with no value: Compose would refuse to start."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution over `text` with the variables in `env`."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"] or "", match["arg"] or ""
        value = env.get(name)
        unset_or_empty = value is None or (op.startswith(":") and value == "")
        if op.endswith("-"):
            return arg if unset_or_empty else str(value)
        if op.endswith("?") and unset_or_empty:
            raise MissingVariable(f"{name}: {arg}")
        if value is None:
            raise MissingVariable(f"{name} is not set")
        return value

    return _VARIABLE.sub(substitute, text)


def variable_uses(text: str) -> dict[str, set[str]]:
    """Every variable `text` refers to, with the operators it is used with ('' when bare)."""
    uses: dict[str, set[str]] = {}
    for match in _VARIABLE.finditer(text):
        if not match["escaped"]:
            uses.setdefault(match["braced"] or match["plain"], set()).add(match["op"] or "")
    return uses
