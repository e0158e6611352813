"""Names of the runs this web UI creates: unguessable, because a name is the key to its run."""

from __future__ import annotations

import base64
import re
import secrets

PREFIX = "run-"
# 15 random bytes are 120 bits, exactly 24 base32 characters with no padding.
_RANDOM_BYTES = 15
_RANDOM_CHARS = 24
_NAME = re.compile(rf"^{PREFIX}[a-z2-7]{{{_RANDOM_CHARS}}}$")


def new_run_name() -> str:
    """A fresh run name: ``run-`` and 24 lower-case base32 characters (120 random bits)."""
    random_part = base64.b32encode(secrets.token_bytes(_RANDOM_BYTES)).decode("ascii").lower()
    return PREFIX + random_part


def is_run_name(name: str) -> bool:
    """True for names this web UI could have made.

    Other CodeRuns in the namespace (for example ones made with ``kubectl create`` and a
    guessable name) are not shown here, so nobody can find them by trying names.
    """
    return bool(_NAME.match(name))
