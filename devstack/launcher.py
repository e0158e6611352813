"""Start devcluster for `make run` and report what is available.

The operator and the web UI are not built yet; until they are, this starts devcluster alone
and says so plainly.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Entry point of `make run`."""
    port = os.environ.get("CODERUN_PORT", "8080")
    print(
        "coderun: the operator and the web UI are not built yet, so there is nothing to serve "
        f"on http://127.0.0.1:{port}/ and devcluster is not started either.",
        file=sys.stderr,
    )
    return 1
