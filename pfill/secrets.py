"""Keep secrets out of output: mask passwords in URLs and known secret values in text; write secret
files readable by their owner only.

Masking is by pattern, not by parsing, so that it holds for exactly the URLs a parser rejects (a
typo'd `postgresql:/user:pw@host/db` is echoed in the error that rejects it):
- `scheme:` + any slashes + `user:password@`: the password runs to the last `@` before the next
  whitespace, so one holding `@`, `/`, `:` or quotes is masked whole (masking a little too much is
  the safe way to be wrong);
- `password=`, `pwd=` and the like in a query string or an ODBC connection string, plain or
  percent-encoded (`PWD%3D...%3B`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MASK = "***"
_USERINFO = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*:/*[^\s:/@'\"]*:)(?P<password>\S*)@"
)
_PARAMETER = re.compile(
    r"(?P<head>(?:(?<![A-Za-z0-9_])|(?<=%3B)|(?<=%3b)|(?<=%26))(?:password|passwd|pwd|secret|token|api_?key|access_token)\s*(?:=|%3D))"
    r"(?P<value>(?:%(?!3B)|[^&;\s%])*)",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """A database or HTTP URL (or a string meant to be one) with its password replaced by ***."""
    return mask_text(url)


def mask_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Text with URL passwords, password parameters and each given secret value replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _PARAMETER.sub(lambda m: f"{m['head']}{MASK}" if m["value"] else m[0], text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only (0600), created with those rights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
