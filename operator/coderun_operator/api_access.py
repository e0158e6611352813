"""How the operator and the web UI reach the API server, and whether it serves CodeRuns.

Both programs find the server the same way (in-cluster configuration, else a kubeconfig) and
ask the same discovery question before they start work; the answers are read here, once.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client, config

from coderun_operator import api_bounds

# How people name the API in messages: coderuns.coderun.dev/v1alpha1.
CODERUN_API = f"{api_bounds.PLURAL}.{api_bounds.API_GROUP}/{api_bounds.API_VERSION}"


class KubeConfigError(Exception):
    """No usable way to the API server; the message is one sentence for people."""


def load_configuration(kubeconfig: str | None = None) -> client.Configuration:
    """Where and how to reach the API server: ``kubeconfig`` if given, else the in-cluster
    configuration, else the kubeconfig the client finds (``$KUBECONFIG``, ``~/.kube/config``).

    Contacts nothing. Raises `KubeConfigError` when there is no usable configuration.
    """
    configuration = client.Configuration()
    try:
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
    except (config.ConfigException, OSError) as error:
        if kubeconfig:
            raise KubeConfigError(f"Cannot use kubeconfig {kubeconfig}: {error}") from None
        raise KubeConfigError(
            "No Kubernetes API server is configured: not running in a cluster and no usable "
            f"kubeconfig (set KUBECONFIG): {error}"
        ) from None
    return configuration


def serves_coderuns(api_resources: Any) -> bool:
    """Whether a discovery answer for coderun.dev/v1alpha1 (``get_api_resources``) lists
    CodeRuns; None (the group version is not served at all) counts as no."""
    names = {item.name for item in getattr(api_resources, "resources", None) or []}
    return api_bounds.PLURAL in names
