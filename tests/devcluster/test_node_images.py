"""Image names and the Python interpreter a pod's user can actually run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from devcluster import images
from devcluster.images import ImagePullError, PythonImages


@pytest.mark.parametrize(
    ("image", "canonical"),
    [
        ("python:3.12-slim", "docker.io/library/python:3.12-slim"),
        ("python", "docker.io/library/python:latest"),
        ("docker.io/library/python:3.11", "docker.io/library/python:3.11"),
        ("mirror.example.com:5000/python:3.12@sha256:abc", "mirror.example.com:5000/python:3.12"),
        ("ghcr.io/acme/tool:1", "ghcr.io/acme/tool:1"),
    ],
)
def test_parse_image(image, canonical):
    assert images.parse_image(image).canonical == canonical


def test_python_images_and_versions():
    assert images.is_python_image("python:3.12-slim")
    assert images.is_python_image("mirror.example.com/library/python:3.11")
    assert not images.is_python_image("busybox")
    assert not images.is_python_image("pythonista:1")
    assert images.wanted_version("python:3.12-slim") == (3, 12)
    assert images.wanted_version("python:latest") is None


def test_choose_prefers_the_wanted_version_then_the_newest():
    found = {"/a/python3.11": (3, 11), "/b/python3.12": (3, 12)}
    assert images.choose(found, (3, 11)) == "/a/python3.11"
    assert images.choose(found, (3, 9)) == "/b/python3.12"
    assert images.choose({}, (3, 12)) is None


def test_unknown_images_fail_to_pull_like_a_registry_miss(tmp_path):
    with pytest.raises(
        ImagePullError,
        match=r"failed to pull and unpack image "
        r'"docker.io/library/nginx:latest"',
    ):
        PythonImages(tmp_path).resolve("nginx", 65532, 65532)


@pytest.fixture
def open_state_dir():
    """A state directory every user can traverse (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="devcluster-images-"))
    directory.chmod(0o711)
    yield directory / "state"
    shutil.rmtree(directory)


def test_python_image_resolves_to_an_interpreter_the_pod_user_can_execute(open_state_dir):
    if os.geteuid() != 0:
        pytest.fail("checking execution as uid 65532 needs root")
    bin_dir, interpreter = PythonImages(open_state_dir).resolve("python:3.12-slim", 65532, 65532)
    assert not interpreter.startswith("/root/")
    for name in ("python", "python3"):
        assert (bin_dir / name).resolve() == Path(interpreter).resolve()
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", "print('ok')"],
        user=65532,
        group=65532,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout == "ok\n", result.stderr


def test_links_below_a_private_directory_are_reported(tmp_path):
    with pytest.raises(ImagePullError, match="not traversable by other users"):
        PythonImages(tmp_path / "state").resolve("python:3.12-slim", 65532, 65532)


def test_interpreters_under_a_private_home_are_rejected(tmp_path):
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    target = private / "python3"
    target.symlink_to("/usr/bin/python3")
    resolver = PythonImages(tmp_path / "state", candidates=(str(target),))
    with pytest.raises(ImagePullError, match="can be executed by uid 65532"):
        resolver.resolve("python:3.12", 65532, 65532)


def test_image_environment_puts_the_interpreter_first(tmp_path):
    env = images.image_environment("python:3.12-slim", tmp_path)
    assert env["PATH"].startswith(f"{tmp_path}:")
    assert env["PYTHON_VERSION"] == "3.12"
