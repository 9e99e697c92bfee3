"""Search what a run leaves behind (logs, reports, databases) for secrets, byte by byte.

Secrets are made distinctive (a random token with a recognisable prefix) so that a hit can only
be a leak, never a coincidence, and they are searched in the forms a leak would take: as is,
URL-encoded, and base64-encoded (an `Authorization: Basic` header).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from urllib.parse import quote


def distinctive(name: str) -> str:
    """A secret nobody else would write, e.g. `LEAKCHECK-loop-api-key-3f9a...`."""
    return f"LEAKCHECK-{name}-{secrets.token_hex(12)}"


def _forms(secret: str) -> set[bytes]:
    raw = secret.encode()
    return {raw, quote(secret, safe="").encode(), base64.b64encode(raw).rstrip(b"=")}


def files_under(*roots: Path) -> Iterator[Path]:
    """Every file below the roots (a root that is a file is itself; missing roots are none)."""
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (path for path in sorted(root.rglob("*")) if path.is_file())


def find_leaks(
    secrets_by_name: Mapping[str, str],
    files: Iterable[Path] = (),
    texts: Mapping[str, str | bytes] | None = None,
) -> list[str]:
    """`"<secret name> in <where>"` for every place a secret appears in any of its forms."""
    haystacks: list[tuple[str, bytes]] = [
        (name, text.encode() if isinstance(text, str) else text)
        for name, text in (texts or {}).items()
    ]
    haystacks += [(str(path), path.read_bytes()) for path in files]
    leaks = []
    for secret_name, secret in secrets_by_name.items():
        forms = _forms(secret)
        for where, content in haystacks:
            if any(form in content for form in forms):
                leaks.append(f"{secret_name} in {where}")
    return leaks
