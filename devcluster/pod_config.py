"""From a pod's spec to what a container process needs: user, environment, command, mounts.

Pure apart from `Lookup` (ConfigMap and Secret values come through it). Where a real kubelet
refuses a container before starting it, `ContainerConfigError` carries its reason and message
(`CreateContainerConfigError`, `container has runAsNonRoot and image will run as root ...`).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devcluster import quantity
from devcluster.containers import ContainerConfig

Obj = dict[str, Any]
# A ConfigMap or Secret by (kind, namespace, name); None when it does not exist.
Lookup = Callable[[str, str, str], Obj | None]
IMAGE_USER = 0  # Python images do not declare a USER: they run as root
PYTHON_IMAGE_COMMAND = ["python3"]
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ContainerConfigError(Exception):
    """The kubelet refuses to create the container (waiting reason and message)."""

    def __init__(self, message: str, reason: str = "CreateContainerConfigError") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def pod_reference(pod: Obj) -> str:
    """`name_namespace(uid)`, how the kubelet names a pod in messages."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid', '')})"


def security_context(pod: Obj, container: Obj) -> Obj:
    """The pod's security context overridden field by field by the container's."""
    merged = dict((pod.get("spec") or {}).get("securityContext") or {})
    merged.update(container.get("securityContext") or {})
    return merged


def identity(pod: Obj, container: Obj) -> tuple[int, int, list[int]]:
    """(uid, gid, supplementary groups) the container runs as, or ContainerConfigError."""
    context = security_context(pod, container)
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    uid = context.get("runAsUser")
    name = container.get("name")
    if context.get("runAsNonRoot"):
        if uid is None:
            raise ContainerConfigError(
                f"container has runAsNonRoot and image will run as root (pod: "
                f'"{pod_reference(pod)}", container: {name})'
            )
        if uid == 0:
            raise ContainerConfigError(
                f'container\'s runAsUser breaks non-root policy (pod: "{pod_reference(pod)}", '
                f"container: {name})"
            )
    uid = IMAGE_USER if uid is None else int(uid)
    gid = int(context.get("runAsGroup", 0))
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    if pod_context.get("fsGroup") is not None:
        groups.append(int(pod_context["fsGroup"]))
    return uid, gid, sorted(set(groups))


def expand(text: str, env: dict[str, str]) -> str:
    """Expand `$(VAR)` from env (unknown references stay as written; `$$` is `$`)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, text)


def _field_value(pod: Obj, path: str, host_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": host_ip,
        "status.podIP": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _resource_value(container: Obj, reference: Obj, node_allocatable: Obj) -> str:
    kind, _, name = reference.get("resource", "").partition(".")
    resources = container.get("resources") or {}
    value = (resources.get(kind) or {}).get(name)
    if value is None:
        value = node_allocatable.get(name, "0")
    divisor = quantity.parse(reference.get("divisor") or "1")
    amount = quantity.parse(value) / divisor
    return str(-(-amount.numerator // amount.denominator))  # rounded up, as the kubelet does


def _key_value(kind: str, pod: Obj, reference: Obj, lookup: Lookup) -> str | None:
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    name, key = reference.get("name", ""), reference.get("key", "")
    obj = lookup(kind, namespace, name)
    label = "configmap" if kind == "configmaps" else "secret"
    if obj is None:
        if reference.get("optional"):
            return None
        raise ContainerConfigError(f'{label} "{name}" not found')
    if kind == "secrets":
        data = obj.get("data") or {}
        if key in data:
            return base64.b64decode(data[key]).decode(errors="replace")
        value = (obj.get("stringData") or {}).get(key)
    else:
        value = (obj.get("data") or {}).get(key)
    if value is None and not reference.get("optional"):
        raise ContainerConfigError(
            f"couldn't find key {key} in {label.capitalize()} {namespace}/{name}"
        )
    return value


def environment(
    pod: Obj,
    container: Obj,
    image_env: dict[str, str],
    *,
    host_ip: str,
    node_allocatable: Obj,
    lookup: Lookup,
) -> dict[str, str]:
    """The process environment: image defaults, HOSTNAME, envFrom, then env in order."""
    env = dict(image_env)
    env["HOSTNAME"] = (pod.get("metadata") or {}).get("name", "")
    env.setdefault("HOME", "/root" if identity_uid(pod, container) == 0 else "/")
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, field in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            reference = source.get(field)
            if not reference:
                continue
            namespace = (pod.get("metadata") or {}).get("namespace", "")
            obj = lookup(kind, namespace, reference.get("name", ""))
            if obj is None:
                if reference.get("optional"):
                    continue
                label = "configmap" if kind == "configmaps" else "secret"
                raise ContainerConfigError(f'{label} "{reference.get("name")}" not found')
            for key, raw in (obj.get("data") or {}).items():
                secret = kind == "secrets"
                env[prefix + key] = (
                    base64.b64decode(raw).decode(errors="replace") if secret else raw
                )
    for variable in container.get("env") or []:
        name = variable.get("name", "")
        source = variable.get("valueFrom")
        if source is None:
            env[name] = expand(variable.get("value", ""), env)
        elif "fieldRef" in source:
            env[name] = _field_value(pod, source["fieldRef"].get("fieldPath", ""), host_ip)
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"], node_allocatable)
        else:
            kind = "configmaps" if "configMapKeyRef" in source else "secrets"
            reference = source.get("configMapKeyRef") or source.get("secretKeyRef") or {}
            value = _key_value(kind, pod, reference, lookup)
            if value is not None:
                env[name] = value
    return env


def identity_uid(pod: Obj, container: Obj) -> int:
    """The uid the container runs as, without the runAsNonRoot checks."""
    uid = security_context(pod, container).get("runAsUser")
    return IMAGE_USER if uid is None else int(uid)


def command_line(container: Obj, env: dict[str, str]) -> list[str]:
    """command + args with `$(VAR)` expanded; the Python image's default is `python3`."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if not command:
        command = list(PYTHON_IMAGE_COMMAND) if not args else []
    argv = [expand(part, env) for part in command + args]
    if not argv:
        raise ContainerConfigError("no command specified")
    return argv


def memory_limit(container: Obj, node_memory: int) -> int:
    """The container's memory limit in bytes; without one, the node's allocatable memory (a
    container without a limit may use the node, never more)."""
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if limit is None:
        return node_memory
    return max(1, min(int(quantity.parse(limit)), node_memory))


def cpu_limit_millis(container: Obj) -> int | None:
    """The container's CPU limit in millicores (rounded up), or None without one."""
    limit = ((container.get("resources") or {}).get("limits") or {}).get("cpu")
    if limit is None:
        return None
    millis = quantity.parse(limit) * 1000
    return max(1, -(-millis.numerator // millis.denominator))


def capabilities(container: Obj) -> list[str] | None:
    """The capability names a root container keeps: the runtime defaults, minus drops, plus
    adds; None means no change (not used: a list is always returned)."""
    from devcluster.namespaces_linux import DEFAULT_CAPABILITIES

    wanted = (container.get("securityContext") or {}).get("capabilities") or {}
    if (container.get("securityContext") or {}).get("privileged"):
        return ["ALL"]
    drops = {c.upper().removeprefix("CAP_") for c in wanted.get("drop") or []}
    keep = [] if "ALL" in drops else [c for c in DEFAULT_CAPABILITIES if c not in drops]
    keep += [c.upper().removeprefix("CAP_") for c in wanted.get("add") or []]
    return sorted(set(keep))


@dataclass(frozen=True)
class VolumeSource:
    """A host directory standing in for one of the pod's volumes."""

    path: str


def volume_mounts(container: Obj, volumes: dict[str, VolumeSource]) -> list[Obj]:
    """Bind mounts for the container's volumeMounts of volumes the node provides."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        source = volumes.get(mount.get("name", ""))
        if source is None:
            continue  # a volume type this node does not provide; the path stays as it is
        target = mount.get("mountPath", "")
        if not target.startswith("/"):
            raise ContainerConfigError(f"mountPath {target!r} must be absolute")
        sub = mount.get("subPath") or ""
        parts = sub.split("/")
        if sub.startswith("/") or ".." in parts:
            # What API validation forbids; checked again so a volume never leads outside itself.
            raise ContainerConfigError(
                f"subPath {sub!r} must be a relative path without '..' (volume {mount.get('name')})"
            )
        path = source.path if not sub else os.path.join(source.path, *[p for p in parts if p])
        if sub:
            # The kubelet creates a missing subPath inside the volume.
            os.makedirs(path, mode=0o777, exist_ok=True)
        mounts.append({"source": path, "target": target, "readOnly": bool(mount.get("readOnly"))})
    return mounts


def build(
    pod: Obj,
    container: Obj,
    *,
    image_env: dict[str, str],
    host_ip: str,
    node_allocatable: Obj,
    node_memory: int,
    pids_max: int,
    volumes: dict[str, VolumeSource],
    isolate_network: bool,
    lookup: Lookup,
) -> ContainerConfig:
    """The whole ContainerConfig for one container, or ContainerConfigError."""
    uid, gid, groups = identity(pod, container)
    env = environment(
        pod, container, image_env, host_ip=host_ip, node_allocatable=node_allocatable, lookup=lookup
    )
    context = security_context(pod, container)
    return ContainerConfig(
        name=container.get("name", ""),
        argv=command_line(container, env),
        env=env,
        cwd=container.get("workingDir") or "/",
        uid=uid,
        gid=gid,
        groups=groups,
        hostname=(pod.get("spec") or {}).get("hostname")
        or (pod.get("metadata") or {}).get("name", "localhost")[:63],
        mounts=volume_mounts(container, volumes),
        read_only_root=bool(context.get("readOnlyRootFilesystem")),
        isolate_network=isolate_network,
        capabilities=capabilities(container),
        no_new_privs=context.get("allowPrivilegeEscalation") is False,
        memory_bytes=memory_limit(container, node_memory),
        pids_max=pids_max,
        cpu_millis=cpu_limit_millis(container),
    )
