"""The repository layout keeps its promises."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_operator_folder_never_shadows_the_standard_library():
    assert not (ROOT / "operator" / "__init__.py").exists()
    # Run from the repository root with the same import path the tests use.
    probe = "import operator, coderun_operator; print(operator.__file__); print(operator.add(2, 3))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'operator'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    module_file, total = result.stdout.split()
    assert not module_file.startswith(str(ROOT)), module_file
    assert total == "5"


def test_required_top_level_layout_exists():
    for name in ["operator/coderun_operator", "webui", "templates", "crds", "tests", "deploy",
                 "devcluster", "README.md", "pyproject.toml", "Makefile", ".ci/run"]:  # fmt: skip
        assert (ROOT / name).exists(), name
