"""Subresources with their own bodies: `scale`, `token` (TokenRequest), `eviction` (with
PodDisruptionBudgets), `binding`, and the review kinds answered without storage
(mixed into `api.ApiServer`)."""

from __future__ import annotations

from typing import Any

from devcluster import quantity
from devcluster.auth import Authenticator
from devcluster.auth import User as AuthUser
from devcluster.calls import PODS, Call, Obj, Result, clone, now_rfc3339, success
from devcluster.errors import ApiError, invalid, method_not_allowed, not_found
from devcluster.rbac import Authorizer
from devcluster.requestinfo import RequestInfo
from devcluster.resources import SUBRESOURCE_KINDS, Registry, Resource
from devcluster.selectors import match_label_selector_object
from devcluster.store import Store


class SubresourceMixin:
    """Scale, token, eviction, binding and reviews for `ApiServer` (which provides these)."""

    store: Store
    registry: Registry
    authenticator: Authenticator

    # -- scale ------------------------------------------------------------------------------------
    def _scale_paths(self, resource: Resource) -> tuple[str, str, str | None]:
        if resource.is_crd:
            version = next(
                v for v in resource.crd["spec"]["versions"] if v["name"] == resource.version
            )
            scale = (version.get("subresources") or {}).get("scale") or {}
            return (
                scale.get("specReplicasPath", ".spec.replicas").lstrip("."),
                scale.get("statusReplicasPath", ".status.replicas").lstrip("."),
                (scale.get("labelSelectorPath") or "").lstrip(".") or None,
            )
        return "spec.replicas", "status.replicas", None

    def _scale_of(self, resource: Resource, obj: Obj) -> Obj:
        spec_path, status_path, selector_path = self._scale_paths(resource)

        def dig(path: str) -> Any:
            value: Any = obj
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value

        status: Obj = {"replicas": dig(status_path) or 0}
        if selector_path:
            status["selector"] = dig(selector_path) or ""
        elif isinstance((obj.get("spec") or {}).get("selector"), dict):
            labels = obj["spec"]["selector"].get("matchLabels") or {}
            status["selector"] = ",".join(f"{k}={v}" for k, v in labels.items())
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": dig(spec_path) or 0},
            "status": status,
        }

    def _update_scale(self, call: Call, scale: Obj) -> Result:
        info, resource = call.info, call.resource
        namespace = info.namespace if resource.namespaced else ""
        old = self.store.get(resource.key, namespace, info.name)
        if old is None:
            raise not_found(resource.plural, resource.group, info.name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(
                "Scale",
                "autoscaling",
                info.name,
                [
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.replicas",
                        "message": f"Invalid value: {replicas}: must be greater than or equal to 0",
                    }
                ],
            )
        new = clone(old)
        spec_path = self._scale_paths(resource)[0].split(".")
        target = new
        for part in spec_path[:-1]:
            target = target.setdefault(part, {})
        target[spec_path[-1]] = replicas
        wanted = (scale.get("metadata") or {}).get("resourceVersion")
        new["metadata"]["resourceVersion"] = wanted or old["metadata"]["resourceVersion"]
        result = self._write_update(call, resource, old, new, "")
        stored = self.store.get(resource.key, namespace, info.name) or old
        return Result(result.status, self._scale_of(resource, stored))

    # -- subresources that create -----------------------------------------------------------------
    def _create_subresource(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        namespace = info.namespace if resource.namespaced else ""
        sub = info.subresource
        if sub not in resource.subresources or sub not in SUBRESOURCE_KINDS:
            raise method_not_allowed()
        obj = self.store.get(resource.key, namespace, info.name)
        if obj is None:
            raise not_found(resource.plural, resource.group, info.name)
        body = self._decode(call)
        if sub == "token":
            spec = (body.get("spec") or {}) if isinstance(body, dict) else {}
            seconds = int(spec.get("expirationSeconds") or 3600)
            token = self.authenticator.issue_service_account_token(
                namespace, info.name, obj["metadata"]["uid"]
            )
            return Result(
                201,
                {
                    "kind": "TokenRequest",
                    "apiVersion": "authentication.k8s.io/v1",
                    "metadata": {
                        "name": info.name,
                        "namespace": namespace,
                        "creationTimestamp": None,
                    },
                    "spec": {
                        "audiences": spec.get("audiences") or ["https://kubernetes.default.svc"],
                        "expirationSeconds": seconds,
                        "boundObjectRef": spec.get("boundObjectRef"),
                    },
                    "status": {"token": token, "expirationTimestamp": now_rfc3339(seconds)},
                },
            )
        if sub == "eviction":
            return self._evict(call, obj, body)
        if sub == "binding":
            target = ((body or {}).get("target") or {}).get("name")
            if not target:
                raise invalid(
                    "Binding",
                    "",
                    info.name,
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "target.name",
                            "message": "Required value",
                        }
                    ],
                )
            if (obj.get("spec") or {}).get("nodeName"):
                raise ApiError(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on pods/binding "
                    f'"{info.name}": pod {info.name} is already assigned to node '
                    f'"{obj["spec"]["nodeName"]}"',
                )

            def bind(pod: Obj) -> None:
                # As the real binding REST does: set the node and the PodScheduled condition.
                pod["spec"]["nodeName"] = target
                status = pod.setdefault("status", {})
                conditions = [
                    c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"
                ]
                conditions.append(
                    {
                        "type": "PodScheduled",
                        "status": "True",
                        "lastProbeTime": None,
                        "lastTransitionTime": now_rfc3339(),
                    }
                )
                status["conditions"] = conditions

            self.system_mutate(PODS, namespace, info.name, bind, subresource="binding")
            return Result(201, success())
        raise method_not_allowed()

    def _evict(self, call: Call, pod: Obj, body: Obj) -> Result:
        namespace = pod["metadata"]["namespace"]
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase == "Running":
            labels = pod["metadata"].get("labels") or {}
            for pdb in self.store.list(("policy", "poddisruptionbudgets"), namespace)[0]:
                spec = pdb.get("spec") or {}
                if not match_label_selector_object(spec.get("selector"), labels):
                    continue
                if not self._disruption_allowed(pdb, namespace):
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget "
                                    f"{pdb['metadata']['name']} needs "
                                    f"more healthy pods",
                                }
                            ]
                        },
                    )
        options = (body or {}).get("deleteOptions") or {}
        resource = self.registry.get("", "v1", "pods")
        assert resource is not None
        self.delete_object(call, resource, pod, options)
        return Result(201, success())

    def _disruption_allowed(self, pdb: Obj, namespace: str) -> bool:
        spec = pdb.get("spec") or {}
        pods = [
            p
            for p in self.store.list(PODS, namespace)[0]
            if match_label_selector_object(spec.get("selector"), p["metadata"].get("labels") or {})
        ]
        healthy = sum(
            1
            for p in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )
        total = len(pods)

        def amount(value: Any) -> int:
            if isinstance(value, str) and value.endswith("%"):
                return -(-total * int(value[:-1]) // 100)
            return int(quantity.parse(value))

        if "minAvailable" in spec:
            return healthy - 1 >= amount(spec["minAvailable"])
        if "maxUnavailable" in spec:
            return (total - healthy) + 1 <= amount(spec["maxUnavailable"])
        return True

    def _review(self, call: Call) -> Result:
        """SelfSubjectAccessReview / SubjectAccessReview / TokenReview, answered, not stored."""
        body = self._decode(call)
        spec = (body.get("spec") or {}) if isinstance(body, dict) else {}
        resource = call.resource
        if resource.plural == "tokenreviews":
            user = self.authenticator.user_for_token(spec.get("token") or "")
            status: Obj = {"authenticated": user is not None}
            if user is not None:
                status["user"] = {
                    "username": user.name,
                    "uid": user.uid,
                    "groups": list(user.groups),
                }
            return Result(201, dict(body, status=status))
        if resource.plural == "selfsubjectreviews":
            user = call.user
            info_out: Obj = {
                "username": user.name if user else "",
                "groups": list(user.groups) if user else [],
            }
            if user and user.uid:
                info_out["uid"] = user.uid
            return Result(201, dict(body, status={"userInfo": info_out}))
        if resource.plural == "selfsubjectrulesreviews":
            rules = (
                Authorizer(self.store).rules_for(call.user, spec.get("namespace") or "")
                if call.user and not call.user.is_admin
                else [
                    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                    {"verbs": ["*"], "nonResourceURLs": ["*"]},
                ]
            )
            resource_rules = [
                {k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if r.get(k)}
                for r in rules
                if r.get("resources")
            ]
            non_resource = [
                {"verbs": r.get("verbs") or [], "nonResourceURLs": r["nonResourceURLs"]}
                for r in rules
                if r.get("nonResourceURLs")
            ]
            return Result(
                201,
                dict(
                    body,
                    status={
                        "resourceRules": resource_rules,
                        "nonResourceRules": non_resource,
                        "incomplete": False,
                    },
                ),
            )
        if resource.plural == "selfsubjectaccessreviews":
            user = call.user
        else:
            user = AuthUser(spec.get("user", ""), tuple(spec.get("groups") or []))
            if spec.get("user", "").startswith("system:serviceaccount:"):
                _, _, ns, sa = spec["user"].split(":", 3)
                user = AuthUser(
                    spec["user"], tuple(spec.get("groups") or []), service_account=(ns, sa)
                )
        attributes = spec.get("resourceAttributes")
        if attributes is not None:
            info = RequestInfo(
                path="",
                verb=attributes.get("verb", ""),
                is_resource=True,
                group=attributes.get("group", ""),
                version=attributes.get("version", ""),
                resource=attributes.get("resource", ""),
                subresource=attributes.get("subresource", ""),
                namespace=attributes.get("namespace", ""),
                name=attributes.get("name", ""),
            )
        else:
            non_resource = spec.get("nonResourceAttributes") or {}
            info = RequestInfo(path=non_resource.get("path", ""), verb=non_resource.get("verb", ""))
        decision = Authorizer(self.store).authorize(user, info) if user else None
        status = {"allowed": bool(decision and decision.allowed)}
        if decision and decision.allowed:
            status["reason"] = f"allowed by {decision.binding} ({decision.role})"
        return Result(201, dict(body, status=status))
