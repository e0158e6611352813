"""Refuses cross-site posts by their ``Sec-Fetch-Site`` and ``Origin`` headers.

There are no accounts or cookie sessions to protect with tokens, but a hostile page could still
make a visitor's browser start runs here. Browsers say where a request comes from; tools such as
curl send neither header and are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# "none" is a navigation the user started (address bar, bookmark); "same-site" is another
# origin under the same registrable domain, which is still not this application.
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def is_cross_site(method: str, headers: Mapping[str, str], host: str) -> bool:
    """True when a state-changing request comes from another site and must be refused.

    ``host`` is the request's own ``Host`` (name and port). ``Sec-Fetch-Site`` decides when
    present; otherwise ``Origin`` must name this host; with neither, the request is accepted.
    """
    if method.upper() in SAFE_METHODS:
        return False
    fetch_site = headers.get("Sec-Fetch-Site")
    if fetch_site:
        return fetch_site.strip().lower() not in _ALLOWED_FETCH_SITES
    origin = headers.get("Origin")
    if origin is None:
        return False
    origin = origin.strip()
    if origin == "null":  # sandboxed frames, data: URLs and other opaque origins
        return True
    # The scheme is not compared: behind a TLS-terminating proxy the app sees http while the
    # browser says https. The host alone identifies the site here.
    return urlsplit(origin).netloc.lower() != host.strip().lower()
