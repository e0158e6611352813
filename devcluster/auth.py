"""Authentication by bearer token: the admin token, static user tokens, service-account tokens.

Tokens are opaque random strings (a real cluster issues signed JWTs for service accounts); the
server maps each to a user. Service-account tokens die with their service account.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

ADMIN_USER = "devcluster-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class User:
    """An authenticated identity as RBAC sees it."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    # For service accounts: (namespace, name), so their tokens can be revoked with them.
    service_account: tuple[str, str] | None = None
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_admin(self) -> bool:
        return MASTERS in self.groups


def service_account_user(namespace: str, name: str, uid: str = "") -> User:
    """The identity Kubernetes gives a service account, with its implicit groups."""
    return User(
        name=f"system:serviceaccount:{namespace}:{name}",
        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
        uid=uid,
        service_account=(namespace, name),
    )


class Authenticator:
    """Token -> user. Thread-safe: tests add tokens while the server runs."""

    def __init__(self, admin_token: str | None = None) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, User] = {}
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self._tokens[self.admin_token] = User(ADMIN_USER, (MASTERS, AUTHENTICATED))

    def authenticate(self, authorization: str | None) -> User | None:
        """The user for an `Authorization: Bearer ...` header, or None."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        return self._tokens.get(authorization[7:].strip())

    def add_user_token(
        self, name: str, groups: list[str] | tuple[str, ...] = (), token: str | None = None
    ) -> str:
        """Register a static token for a user (plus `system:authenticated`)."""
        token = token or secrets.token_urlsafe(32)
        all_groups = tuple(dict.fromkeys([*groups, AUTHENTICATED]))
        with self._lock:
            self._tokens[token] = User(name, all_groups)
        return token

    def issue_service_account_token(self, namespace: str, name: str, uid: str = "") -> str:
        """A token that authenticates as the service account (TokenRequest)."""
        token = "sa." + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = service_account_user(namespace, name, uid)
        return token

    def revoke_service_account(self, namespace: str, name: str) -> None:
        with self._lock:
            for token in [
                t for t, u in self._tokens.items() if u.service_account == (namespace, name)
            ]:
                del self._tokens[token]

    def user_for_token(self, token: str) -> User | None:
        return self._tokens.get(token)
