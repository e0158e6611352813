"""Kubeconfig files for devcluster identities (admin, test users, service accounts)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import yaml


def kubeconfig(
    server: str,
    token: str,
    *,
    namespace: str = "default",
    user: str = "devcluster-admin",
    context: str = "devcluster",
    ca_data: str | None = None,
) -> dict[str, Any]:
    """A kubeconfig whose current context names `namespace`."""
    cluster: dict[str, Any] = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = ca_data
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "devcluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": "devcluster", "user": user, "namespace": namespace},
            }
        ],
        "current-context": context,
    }


def write_kubeconfig(
    path: str,
    server: str,
    token: str,
    *,
    namespace: str = "default",
    user: str = "devcluster-admin",
    context: str = "devcluster",
    ca_data: str | None = None,
) -> str:
    """Write atomically with mode 0600 (it holds a bearer token); returns the path."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".kubeconfig-")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        yaml.safe_dump(
            kubeconfig(
                server, token, namespace=namespace, user=user, context=context, ca_data=ca_data
            ),
            out,
            default_flow_style=False,
        )
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return path
