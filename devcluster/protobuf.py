"""Decoding of the Kubernetes protobuf request bodies that kubectl's typed commands send.

`kubectl create namespace|configmap|secret|serviceaccount|token|deployment|role|rolebinding`
and `kubectl auth can-i` post `application/vnd.kubernetes.protobuf` and, unlike discovery,
do not fall back to JSON. devcluster decodes those bodies for the few kinds those commands
build (field numbers as in Kubernetes' generated.proto) and answers in JSON, which the same
clients accept. A body with a field outside these tables is refused with 415 rather than
stored with data silently missing.
"""

from __future__ import annotations

import base64
from typing import Any

from devcluster.errors import ApiError

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# Field kinds: "s" string, "b" bytes (base64 in JSON), "i" varint int, "t" bool,
# "ms" map<string,string>, "mb" map<string,bytes>, "[s" repeated string,
# "[<Type>" repeated message, "<Type>" nested message, "time" a meta.v1.Time,
# "ios" an IntOrString, "mq" map<string, Quantity>.
# A trailing "!" keeps a zero value (the Go field is a pointer, so zero was set on purpose).
Table = dict[int, tuple[str, str]]

_TYPES: dict[str, Table] = {
    "ObjectMeta": {
        1: ("name", "s"),
        2: ("generateName", "s"),
        3: ("namespace", "s"),
        4: ("selfLink", "s"),
        5: ("uid", "s"),
        6: ("resourceVersion", "s"),
        7: ("generation", "i"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "i!"),
        11: ("labels", "ms"),
        12: ("annotations", "ms"),
        14: ("finalizers", "[s"),
    },
    "LabelSelector": {
        1: ("matchLabels", "ms"),
        2: ("matchExpressions", "[LabelSelectorRequirement"),
    },
    "LabelSelectorRequirement": {1: ("key", "s"), 2: ("operator", "s"), 3: ("values", "[s")},
    "ConfigMap": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "ms"),
        3: ("binaryData", "mb"),
        4: ("immutable", "t!"),
    },
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "mb"),
        3: ("type", "s"),
        4: ("stringData", "ms"),
        5: ("immutable", "t!"),
    },
    "Namespace": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "NamespaceSpec"),
        3: ("status", "Ignored"),
    },
    "NamespaceSpec": {1: ("finalizers", "[s")},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        3: ("imagePullSecrets", "[LocalRef"),
        4: ("automountServiceAccountToken", "t!"),
    },
    "LocalRef": {1: ("name", "s")},
    "TokenRequest": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "TokenRequestSpec"),
        3: ("status", "Ignored"),
    },
    "TokenRequestSpec": {
        1: ("audiences", "[s"),
        3: ("boundObjectRef", "BoundObjectReference"),
        4: ("expirationSeconds", "i!"),
    },
    "BoundObjectReference": {
        1: ("kind", "s"),
        2: ("apiVersion", "s"),
        3: ("name", "s"),
        4: ("uid", "s"),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SelfSubjectAccessReviewSpec"),
        3: ("status", "Ignored"),
    },
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta"), 2: ("status", "Ignored")},
    "SelfSubjectRulesReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SelfSubjectRulesReviewSpec"),
        3: ("status", "Ignored"),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "s")},
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes"),
        2: ("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "s"),
        2: ("verb", "s"),
        3: ("group", "s"),
        4: ("version", "s"),
        5: ("resource", "s"),
        6: ("subresource", "s"),
        7: ("name", "s"),
    },
    "NonResourceAttributes": {1: ("path", "s"), 2: ("verb", "s")},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[PolicyRule")},
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[PolicyRule")},
    "PolicyRule": {
        1: ("verbs", "[s"),
        2: ("apiGroups", "[s"),
        3: ("resources", "[s"),
        4: ("resourceNames", "[s"),
        5: ("nonResourceURLs", "[s"),
    },
    "RoleBinding": {
        1: ("metadata", "ObjectMeta"),
        2: ("subjects", "[Subject"),
        3: ("roleRef", "RoleRef"),
    },
    "ClusterRoleBinding": {
        1: ("metadata", "ObjectMeta"),
        2: ("subjects", "[Subject"),
        3: ("roleRef", "RoleRef"),
    },
    "Subject": {1: ("kind", "s"), 2: ("apiGroup", "s"), 3: ("name", "s"), 4: ("namespace", "s")},
    "RoleRef": {1: ("apiGroup", "s"), 2: ("kind", "s"), 3: ("name", "s")},
    "Deployment": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "DeploymentSpec"),
        3: ("status", "Ignored"),
    },
    "DeploymentSpec": {
        1: ("replicas", "i!"),
        2: ("selector", "LabelSelector"),
        3: ("template", "PodTemplateSpec"),
        4: ("strategy", "Ignored"),
        5: ("minReadySeconds", "i"),
        6: ("revisionHistoryLimit", "i!"),
        7: ("paused", "t"),
        9: ("progressDeadlineSeconds", "i!"),
    },
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec"), 3: ("status", "Ignored")},
    "JobSpec": {
        1: ("parallelism", "i!"),
        2: ("completions", "i!"),
        3: ("activeDeadlineSeconds", "i!"),
        4: ("selector", "LabelSelector"),
        6: ("template", "PodTemplateSpec"),
        7: ("backoffLimit", "i!"),
        8: ("ttlSecondsAfterFinished", "i!"),
    },
    "CronJob": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "CronJobSpec"),
        3: ("status", "Ignored"),
    },
    "CronJobSpec": {
        1: ("schedule", "s"),
        2: ("startingDeadlineSeconds", "i!"),
        3: ("concurrencyPolicy", "s"),
        4: ("suspend", "t!"),
        5: ("jobTemplate", "JobTemplateSpec"),
        6: ("successfulJobsHistoryLimit", "i!"),
        7: ("failedJobsHistoryLimit", "i!"),
        8: ("timeZone", "s"),
    },
    "JobTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec")},
    "Service": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "ServiceSpec"),
        3: ("status", "Ignored"),
    },
    "ServiceSpec": {
        1: ("ports", "[ServicePort"),
        2: ("selector", "ms"),
        3: ("clusterIP", "s"),
        4: ("type", "s"),
        5: ("externalIPs", "[s"),
        7: ("sessionAffinity", "s"),
        11: ("externalName", "s"),
    },
    "ServicePort": {
        1: ("name", "s"),
        2: ("protocol", "s"),
        3: ("port", "i"),
        4: ("targetPort", "ios"),
        5: ("nodePort", "i"),
    },
    "PodDisruptionBudget": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "PodDisruptionBudgetSpec"),
        3: ("status", "Ignored"),
    },
    "PodDisruptionBudgetSpec": {
        1: ("minAvailable", "ios"),
        2: ("selector", "LabelSelector"),
        3: ("maxUnavailable", "ios"),
        4: ("unhealthyPodEvictionPolicy", "s"),
    },
    "ResourceQuota": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "ResourceQuotaSpec"),
        3: ("status", "Ignored"),
    },
    "ResourceQuotaSpec": {1: ("hard", "mq"), 2: ("scopes", "[s")},
    # Only what the generators set; 11-13 are hostNetwork/hostPID/hostIPC (false).
    "PodSpec": {
        2: ("containers", "[Container"),
        3: ("restartPolicy", "s"),
        11: ("hostNetwork", "t"),
        12: ("hostPID", "t"),
        13: ("hostIPC", "t"),
    },
    "Container": {
        1: ("name", "s"),
        2: ("image", "s"),
        3: ("command", "[s"),
        4: ("args", "[s"),
        5: ("workingDir", "s"),
        6: ("ports", "[ContainerPort"),
        7: ("env", "[EnvVar"),
        8: ("resources", "Ignored"),
        16: ("stdin", "t"),
        17: ("stdinOnce", "t"),
        18: ("tty", "t"),
    },
    "ContainerPort": {
        1: ("name", "s"),
        2: ("hostPort", "i"),
        3: ("containerPort", "i"),
        4: ("protocol", "s"),
        5: ("hostIP", "s"),
    },
    "EnvVar": {1: ("name", "s"), 2: ("value", "s")},
    "Eviction": {1: ("metadata", "ObjectMeta"), 2: ("deleteOptions", "DeleteOptions")},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "i!"),
        2: ("preconditions", "Preconditions"),
        3: ("orphanDependents", "t!"),
        4: ("propagationPolicy", "s"),
        5: ("dryRun", "[s"),
    },
    "Preconditions": {1: ("uid", "s"), 2: ("resourceVersion", "s")},
    "Time": {1: ("seconds", "i"), 2: ("nanos", "i")},
}
_TOP_LEVEL = {
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("authentication.k8s.io/v1", "TokenRequest"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "Eviction"),
    ("batch/v1", "Job"),
    ("batch/v1", "CronJob"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
    ("v1", "ResourceQuota"),
}


def _unsupported(what: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"devcluster decodes protobuf only for the objects kubectl's typed "
        f"commands create; {what}. Send application/json instead.",
    )


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise _unsupported("the protobuf body is truncated")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, position


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(number, wire type, value) triples; values are ints or bytes."""
    out = []
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 2:
            length, position = _varint(data, position)
            value = data[position : position + length]
            position += length
        elif wire == 1:
            value, position = int.from_bytes(data[position : position + 8], "little"), position + 8
        elif wire == 5:
            value, position = int.from_bytes(data[position : position + 4], "little"), position + 4
        else:
            raise _unsupported(f"wire type {wire} is not supported")
        out.append((number, wire, value))
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _time(data: bytes) -> str | None:
    import datetime

    fields = {number: value for number, _, value in _fields(data)}
    seconds = _signed(fields.get(1, 0))
    if not seconds:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _map_entry(data: bytes, as_bytes: bool) -> tuple[str, str]:
    key, value = "", b""
    for number, _, item in _fields(data):
        if number == 1:
            key = item.decode()
        elif number == 2:
            value = item
    return key, base64.b64encode(value).decode() if as_bytes else value.decode()


def decode_message(data: bytes, type_name: str) -> dict[str, Any]:
    """Decode one message of a known type into its JSON form (zero values omitted)."""
    table = _TYPES[type_name]
    out: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        if number not in table:
            if (wire == 0 and value == 0) or (wire == 2 and not value):
                continue  # a zero value of a field we do not model: nothing is lost
            raise _unsupported(f"field {number} of {type_name} is not supported")
        name, kind = table[number]
        keep_zero = kind.endswith("!")
        kind = kind.rstrip("!")
        if kind == "Ignored":
            continue
        if kind == "s":
            text = value.decode()
            if text:
                out[name] = text
        elif kind == "b":
            out[name] = base64.b64encode(value).decode()
        elif kind == "i":
            number_value = _signed(value)
            if number_value or keep_zero:
                out[name] = number_value
        elif kind == "t":
            if value or keep_zero:
                out[name] = bool(value)
        elif kind in ("ms", "mb"):
            key, item = _map_entry(value, kind == "mb")
            out.setdefault(name, {})[key] = item
        elif kind == "[s":
            out.setdefault(name, []).append(value.decode())
        elif kind == "ios":
            fields = {n: v for n, _, v in _fields(value)}
            out[name] = (
                fields.get(3, b"").decode() if fields.get(1) == 1 else _signed(fields.get(2, 0))
            )
        elif kind == "mq":
            key, raw = "", b""
            for inner, _, item in _fields(value):
                if inner == 1:
                    key = item.decode()
                elif inner == 2:
                    raw = item
            amount = next((v.decode() for n, _, v in _fields(raw) if n == 1), "0")
            out.setdefault(name, {})[key] = amount
        elif kind == "time":
            stamp = _time(value)
            if stamp:
                out[name] = stamp
        elif kind.startswith("["):
            out.setdefault(name, []).append(decode_message(value, kind[1:]))
        else:
            nested = decode_message(value, kind)
            if nested:
                out[name] = nested
    return out


def decode_object(body: bytes) -> dict[str, Any]:
    """Decode a `k8s\\0`-prefixed runtime.Unknown envelope into a JSON object."""
    if not body.startswith(MAGIC):
        raise _unsupported("the body lacks the Kubernetes protobuf envelope")
    api_version = kind = ""
    raw = b""
    for number, _, value in _fields(body[len(MAGIC) :]):
        if number == 1:
            for inner, _, item in _fields(value):
                if inner == 1:
                    api_version = item.decode()
                elif inner == 2:
                    kind = item.decode()
        elif number == 2:
            raw = value
    if (api_version, kind) not in _TOP_LEVEL:
        raise _unsupported(f"{kind or 'this kind'} ({api_version}) is not among them")
    obj = decode_message(raw, kind)
    return {"apiVersion": api_version, "kind": kind, **obj}
