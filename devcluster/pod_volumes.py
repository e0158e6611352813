"""Per-pod directories on the node: emptyDir volumes and container log files.

An emptyDir is a private directory of the pod (mode 0777 like the kubelet's; group-owned by
`fsGroup` when set). One with `medium: Memory` or a `sizeLimit` is a tmpfs of that size mounted
by the node, so the limit is enforced by the kernel (ENOSPC) rather than by later eviction, and
its pages count against the memory cgroup of the container that writes them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from devcluster import quantity
from devcluster.pod_config import VolumeSource

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class PodDirectories:
    """The directories of one pod under the node's state directory."""

    def __init__(self, state_dir: Path, pod: Obj) -> None:
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.root = state_dir / "pods" / self.uid
        self.logs = state_dir / "logs" / f"{meta['namespace']}_{meta['name']}_{self.uid}"
        self._mounted: list[Path] = []

    def log_path(self, container: str) -> Path:
        """Where the container's CRI log goes (first and only attempt: restartPolicy Never)."""
        return self.logs / container / "0.log"

    def prepare_volumes(
        self, pod: Obj, can_mount: bool, node_memory: int
    ) -> dict[str, VolumeSource]:
        """Create the pod's emptyDir volumes; other volume types are not provided."""
        self.root.mkdir(parents=True, exist_ok=True)
        for directory in (self.root.parent, self.root):
            directory.chmod(0o700)  # other pods' users must not reach these from the host
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        volumes = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            empty = volume.get("emptyDir")
            if empty is None:
                log.info(
                    "pod %s: volume %s is not an emptyDir; not provided on this node",
                    self.uid,
                    volume.get("name"),
                )
                continue
            name = volume.get("name", "")
            if not name or "/" in name or name in (".", ".."):
                raise ValueError(f"invalid volume name {name!r}")
            path = self.root / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            limit = empty.get("sizeLimit")
            if can_mount and (empty.get("medium") == "Memory" or limit):
                size = int(quantity.parse(limit)) if limit else node_memory
                from devcluster import namespaces_linux

                namespaces_linux.mount(
                    "tmpfs",
                    str(path),
                    "tmpfs",
                    namespaces_linux.MS_NOSUID | namespaces_linux.MS_NODEV,
                    f"size={max(size, 4096)},mode=0777",
                )
                self._mounted.append(path)
            if fs_group is not None and os.geteuid() == 0:
                os.chown(path, -1, int(fs_group))
                path.chmod(0o2777)
            else:
                path.chmod(0o777)
            volumes[volume["name"]] = VolumeSource(str(path))
        return volumes

    def remove_volumes(self) -> None:
        """Unmount and delete the pod's volumes (logs stay until the pod object is gone)."""
        from devcluster import namespaces_linux

        for path in self._mounted:
            with contextlib.suppress(OSError):
                namespaces_linux.unmount(str(path))
        self._mounted = []
        volumes = self.root / "volumes"
        if volumes.exists():
            for child in volumes.iterdir():
                if os.path.ismount(child):
                    with contextlib.suppress(OSError):
                        namespaces_linux.unmount(str(child))
        shutil.rmtree(self.root, ignore_errors=True)

    def remove_logs(self) -> None:
        """Delete the pod's log files."""
        shutil.rmtree(self.logs, ignore_errors=True)
