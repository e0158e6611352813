"""Real snippets through the JSON API and through kubectl, end to end on the whole stack."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

pytestmark = pytest.mark.timeout(600)

SNIPPETS = [
    ("arithmetic", "print(6 * 7)", {}, "Succeeded", "42\n", ""),
    (
        "loop",
        "for i in range(3):\n    print(f'line {i}')",
        {},
        "Succeeded",
        "line 0\nline 1\nline 2\n",
        "",
    ),
    ("unicode", "print('h\\u00e9llo \\U0001F40D')", {}, "Succeeded", "h\u00e9llo \U0001f40d\n", ""),
    (
        "stdin",
        "name = input('Name? ')\nprint('Hi', name)",
        {"stdin": "Ada\n"},
        "Succeeded",
        "Name? Hi Ada\n",
        "",
    ),
]


@pytest.mark.parametrize(
    ("code", "fields", "phase", "stdout", "stderr"),
    [case[1:] for case in SNIPPETS],
    ids=[case[0] for case in SNIPPETS],
)
def test_snippets_through_the_api(full_stack, code, fields, phase, stdout, stderr):
    status = full_stack.run(code, **fields)
    assert (status["phase"], status["stdout"], status["stderr"]) == (phase, stdout, stderr)


def test_a_traceback_is_reported_as_an_error(full_stack):
    status = full_stack.run("def f():\n    return 1 / 0\nf()\n")
    assert (status["phase"], status["reason"], status["exitCode"]) == ("Failed", "Error", 1)
    assert "ZeroDivisionError: division by zero" in status["stderr"]
    assert "line 2, in f" in status["stderr"]


def test_api_errors_are_json_sentences(full_stack):
    status, body = full_stack.api("POST", "/api/runs", {"code": ""})
    assert status == 422 and body["error"]["message"].endswith(".")
    status, body = full_stack.api("POST", "/api/runs", {"code": "x", "timeoutSeconds": 99999})
    assert status == 422 and "time limit" in body["error"]["message"]
    status, body = full_stack.api("GET", "/api/runs/run-aaaaaaaaaaaaaaaaaaaaaaaa")
    assert status == 404


def test_cancel_through_the_api(full_stack):
    name = full_stack.submit(
        "import time\nprint('started', flush=True)\ntime.sleep(60)", timeoutSeconds=60
    )
    status, body = full_stack.api("POST", f"/api/runs/{name}/cancel")
    assert status in (200, 202), body
    final = full_stack.result(name)["status"]
    assert (final["phase"], final["reason"]) == ("Failed", "Cancelled")


def test_kubectl_create_get_and_delete(full_stack):
    manifest = textwrap.dedent(
        """\
        apiVersion: coderun.dev/v1alpha1
        kind: CodeRun
        metadata:
          name: from-kubectl
        spec:
          timeoutSeconds: 20
          code: |
            import sys
            print("to stdout")
            print("to stderr", file=sys.stderr)
            sys.exit(4)
        """
    )
    assert "created" in full_stack.kubectl("create", "-f", "-", input=manifest)
    run = full_stack.wait_coderun_terminal("from-kubectl")
    status = run["status"]
    assert (status["phase"], status["reason"], status["exitCode"]) == ("Failed", "Error", 4)
    assert (status["stdout"], status["stderr"]) == ("to stdout\n", "to stderr\n")
    table = full_stack.kubectl("get", "coderuns", "from-kubectl").splitlines()
    assert table[0].split() == ["NAME", "PHASE", "REASON", "EXIT", "DURATION", "AGE"]
    assert table[1].split()[:4] == ["from-kubectl", "Failed", "Error", "4"]
    short = full_stack.kubectl("get", "crun", "from-kubectl", "-o", "json")
    assert json.loads(short)["metadata"]["name"] == "from-kubectl"
    explained = full_stack.kubectl("explain", "coderun.spec.stdin")
    assert "EOFError" in explained
    full_stack.kubectl("delete", "coderun", "from-kubectl")
    assert full_stack.coderun("from-kubectl") is None


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("  code: ''\n", "spec.code"),
        ("  code: x\n  surprise: 1\n", 'unknown field "spec.surprise"'),
    ],
    ids=["empty-code", "unknown-field"],
)
def test_a_malformed_run_is_refused_by_the_api_server(full_stack, spec, words):
    manifest = (
        "apiVersion: coderun.dev/v1alpha1\nkind: CodeRun\nmetadata:\n  name: bad\nspec:\n" + spec
    )
    out = full_stack.kubectl("create", "-f", "-", input=manifest, check=False)
    assert full_stack.coderun("bad") is None, out
    assert words in out


def test_finished_runs_expire_after_their_time_to_live(full_stack):
    created = full_stack.kubectl(
        "create",
        "-f",
        "-",
        "-o",
        "name",
        input="apiVersion: coderun.dev/v1alpha1\nkind: CodeRun\nmetadata:\n  name: ttl-one\n"
        "spec:\n  code: print(1)\n  ttlSecondsAfterFinished: 1\n",
    )
    assert created.strip() == "coderun.coderun.dev/ttl-one"
    deadline = time.monotonic() + 120
    while full_stack.coderun("ttl-one") is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert full_stack.coderun("ttl-one") is None
