"""Container images on a node without a container runtime: which local program stands for one.

Only Python images (`python:*`, with or without a registry prefix) exist here: they map to a
Python interpreter on this machine that the pod's numeric user can actually execute (checked by
running it as that user, since interpreters under a private home such as /root/.pyenv are not
reachable by others), exposed as `python`, `python3` and `python3.X` through a directory that
goes first on the container's PATH. Any other image fails to "pull", as on a real node when the
registry does not have it.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

# Where a Python image's interpreter may be found, best first within a version.
DEFAULT_CANDIDATES = (
    "/usr/local/bin/python3.{minor}",
    "/usr/bin/python3.{minor}",
    "/usr/local/bin/python3",
    "/usr/bin/python3",
)
MINORS = range(20, 7, -1)  # 3.20 .. 3.8: the runner needs at least 3.8
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_TAG_VERSION = re.compile(r"^(\d+)\.(\d+)")


class ImagePullError(Exception):
    """The image cannot be provided on this node (the kubelet's ErrImagePull)."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed image name."""

    registry: str
    repository: str
    tag: str

    @property
    def canonical(self) -> str:
        """`docker.io/library/python:3.12-slim`, as the runtime reports it."""
        return f"{self.registry}/{self.repository}:{self.tag}"


def parse_image(image: str) -> ImageReference:
    """Split `[registry/]repository[:tag][@digest]` the way the container runtime does."""
    name = image.split("@", 1)[0]
    registry = "docker.io"
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, name = first, rest
    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    tag = tag or "latest"
    if registry == "docker.io" and "/" not in repository:
        repository = f"library/{repository}"
    return ImageReference(registry, repository, tag)


def is_python_image(image: str) -> bool:
    """Whether the image is the official Python image (any tag, any registry mirror)."""
    return parse_image(image).repository.rsplit("/", 1)[-1] == "python"


def wanted_version(image: str) -> tuple[int, int] | None:
    """The Python version a tag asks for (`3.12-slim` -> (3, 12)); None for `latest` etc."""
    match = _TAG_VERSION.match(parse_image(image).tag)
    return (int(match.group(1)), int(match.group(2))) if match else None


def pull_error_message(image: str) -> str:
    """What containerd says when a registry does not have an image."""
    ref = parse_image(image).canonical
    return (
        f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": '
        f"{ref}: not found (devcluster nodes provide only python:* images)"
    )


def choose(found: dict[str, tuple[int, int]], wanted: tuple[int, int] | None) -> str | None:
    """Pick an interpreter path: the wanted version if present, else the newest one."""
    if not found:
        return None
    if wanted is not None:
        exact = [path for path, version in found.items() if version == wanted]
        if exact:
            return exact[0]
    return max(found, key=lambda path: found[path])


def image_environment(image: str, bin_dir: Path) -> dict[str, str]:
    """The environment a Python image sets, with the interpreter directory first on PATH."""
    env = {"PATH": f"{bin_dir}:{IMAGE_PATH}", "LANG": "C.UTF-8"}
    version = wanted_version(image)
    if version is not None:
        env["PYTHON_VERSION"] = f"{version[0]}.{version[1]}"
    return env


class PythonImages:
    """Resolves Python images to interpreters the pod's user can run, with a PATH directory."""

    def __init__(self, state_dir: Path, candidates: tuple[str, ...] = DEFAULT_CANDIDATES) -> None:
        self.state_dir = state_dir
        self.candidates = candidates
        self._lock = threading.Lock()
        self._checked: dict[tuple[str, int, int], tuple[int, int] | None] = {}

    def _candidate_paths(self) -> list[str]:
        paths: list[str] = []
        for pattern in self.candidates:
            for minor in MINORS if "{minor}" in pattern else (None,):
                path = pattern.format(minor=minor) if minor is not None else pattern
                if os.path.isfile(path) and path not in paths:
                    paths.append(path)
        return paths

    def _version_as(self, path: str, uid: int, gid: int) -> tuple[int, int] | None:
        key = (path, uid, gid)
        with self._lock:
            if key in self._checked:
                return self._checked[key]
        version = None
        try:
            # Running it as the pod's user is the only reliable check: every directory on the
            # way, the binary and its standard library must be reachable by that user.
            result = subprocess.run(
                [path, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=20,
                cwd="/",
                env={},
                user=uid if os.geteuid() == 0 else None,
                group=gid if os.geteuid() == 0 else None,
                extra_groups=[] if os.geteuid() == 0 else None,
                check=False,
            )
            if result.returncode == 0:
                major, minor = result.stdout.strip().split(".")
                version = (int(major), int(minor))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            version = None
        with self._lock:
            self._checked[key] = version
        return version

    def resolve(self, image: str, uid: int, gid: int) -> tuple[Path, str]:
        """(directory to put first on PATH, interpreter path) for `image` run as uid:gid."""
        if not is_python_image(image):
            raise ImagePullError(pull_error_message(image))
        found = {}
        for path in self._candidate_paths():
            version = self._version_as(path, uid, gid)
            if version is not None and version >= (3, 8):
                found[path] = version
        chosen = choose(found, wanted_version(image))
        if chosen is None:
            raise ImagePullError(
                f'failed to pull image "{image}": no Python interpreter (3.8 or newer) on '
                f"this node can be executed by uid {uid} (looked at: "
                f"{', '.join(self._candidate_paths()) or 'nothing found'})"
            )
        bin_dir = self._bin_dir(chosen, found[chosen])
        if self._version_as(str(bin_dir / "python3"), uid, gid) is None:
            raise ImagePullError(
                f"the interpreter links in {bin_dir} cannot be executed by uid {uid}: a "
                "directory above them is not traversable by other users (choose a state "
                "directory outside private homes and 0700 temporary directories)"
            )
        return bin_dir, chosen

    def _bin_dir(self, interpreter: str, version: tuple[int, int]) -> Path:
        """A world-readable directory of `python`, `python3`, `python3.X` links."""
        name = f"python{version[0]}.{version[1]}" + interpreter.replace("/", "_")
        directory = self.state_dir / "bin" / name
        with self._lock:
            if not directory.is_dir():
                directory.mkdir(parents=True, exist_ok=True)
                for link in ("python", "python3", f"python{version[0]}.{version[1]}"):
                    with contextlib.suppress(FileExistsError):
                        (directory / link).symlink_to(interpreter)
            for path in (self.state_dir, self.state_dir / "bin", directory):
                # Traversable by every pod user; nothing secret lives on this path.
                path.chmod(0o755 if path != self.state_dir else 0o711)
        return directory
