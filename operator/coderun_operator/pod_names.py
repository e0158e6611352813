"""The name of a run's pod, derived from the run's name alone.

A fixed name lets a retried handler or a restarted operator find the pod it already created
instead of making a second one. Run names may be up to 253 characters (a DNS subdomain);
pod names are kept to 63 so they are also valid hostnames and label values.
"""

from __future__ import annotations

import hashlib

MAX_POD_NAME = 63
PREFIX = "crun-"
_HASH_CHARS = 10


def pod_name_for_run(run_name: str) -> str:
    """Return the pod name for ``run_name``: readable when it fits, else truncated + hashed."""
    candidate = PREFIX + run_name
    if len(candidate) <= MAX_POD_NAME and "." not in run_name:
        return candidate
    # Truncating or replacing dots could make two runs collide; the hash of the full name
    # keeps them apart.
    digest = hashlib.sha256(run_name.encode()).hexdigest()[:_HASH_CHARS]
    room = MAX_POD_NAME - len(PREFIX) - 1 - _HASH_CHARS
    stem = run_name.replace(".", "-")[:room].rstrip("-")
    return f"{PREFIX}{stem}-{digest}" if stem else f"{PREFIX}{digest}"
