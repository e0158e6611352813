"""Form and JSON run requests are checked against the run limits with clear sentences."""

import dataclasses

import pytest

from coderun_operator.settings import load_run_limits
from webui.validation import InvalidRunError, run_from_form, run_from_json, timeout_choices

LIMITS = dataclasses.replace(
    load_run_limits({}), max_code_chars=100, max_stdin_chars=10, max_timeout_seconds=60
)


def _error(excinfo: pytest.ExceptionInfo[InvalidRunError]) -> tuple[int, str, str]:
    first = excinfo.value.first
    return excinfo.value.status, first.field, first.message


def test_the_original_form_with_only_code_takes_the_defaults():
    run = run_from_form({"code": "print(1)"}, LIMITS)
    assert run.spec() == {"code": "print(1)"}


def test_form_with_all_fields_builds_the_spec_and_normalises_line_breaks():
    run = run_from_form(
        {"code": "x = 1\r\nprint(x)\r\n", "stdin": "Ada\r\n", "timeoutSeconds": "30"}, LIMITS
    )
    assert run.spec() == {"code": "x = 1\nprint(x)\n", "stdin": "Ada\n", "timeoutSeconds": 30}


def test_empty_form_stdin_means_no_input_at_all():
    assert "stdin" not in run_from_form({"code": "input()", "stdin": ""}, LIMITS).spec()


@pytest.mark.parametrize("code", ["", "   \n\t  "])
def test_empty_code_is_refused(code):
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_form({"code": code}, LIMITS)
    assert _error(excinfo) == (422, "code", "Type some Python code to run.")


def test_code_over_the_limit_is_too_large_and_says_both_numbers():
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_form({"code": "x" * 101}, LIMITS)
    status, field, message = _error(excinfo)
    assert (status, field) == (413, "code")
    assert "101" in message and "100" in message


def test_limit_counts_characters_not_bytes():
    assert run_from_form({"code": "é" * 100}, LIMITS).code == "é" * 100


def test_stdin_over_the_limit_is_too_large():
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_form({"code": "input()", "stdin": "y" * 11}, LIMITS)
    assert _error(excinfo)[:2] == (413, "stdin")


@pytest.mark.parametrize("timeout", ["0", "61", "-5", "ten", "1.5", "\u0661\u0660"])
def test_bad_timeouts_are_refused(timeout):
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_form({"code": "pass", "timeoutSeconds": timeout}, LIMITS)
    assert _error(excinfo) == (422, "timeoutSeconds", "Choose a time limit from 1 to 60 seconds.")


def test_several_problems_are_all_reported_size_first():
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_form({"code": "", "stdin": "y" * 11, "timeoutSeconds": "0"}, LIMITS)
    assert set(excinfo.value.by_field()) == {"code", "stdin", "timeoutSeconds"}
    assert excinfo.value.first.field == "stdin"


def test_nul_characters_are_refused_with_a_reason():
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_form({"code": "print(1)\x00"}, LIMITS)
    assert "NUL" in excinfo.value.first.message


def test_json_run_with_all_fields():
    run = run_from_json({"code": "print(1)", "stdin": "", "timeoutSeconds": 5}, LIMITS)
    assert run.spec() == {"code": "print(1)", "stdin": "", "timeoutSeconds": 5}


def test_json_null_stdin_means_no_input():
    assert "stdin" not in run_from_json({"code": "pass", "stdin": None}, LIMITS).spec()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": 1}, "code"),
        ({}, "code"),
        ({"code": "pass", "stdin": 5}, "stdin"),
        ({"code": "pass", "timeoutSeconds": "5"}, "timeoutSeconds"),
        ({"code": "pass", "timeoutSeconds": True}, "timeoutSeconds"),
        ({"code": "pass", "timeoutSeconds": 2.5}, "timeoutSeconds"),
        ({"code": "pass", "image": "evil"}, "image"),
    ],
)
def test_invalid_json_fields_are_named(body, field):
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_json(body, LIMITS)
    assert _error(excinfo)[:2] == (422, field)


def test_json_body_must_be_an_object():
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_json(["print(1)"], LIMITS)
    assert "JSON object" in excinfo.value.first.message


def test_json_size_errors_are_413():
    with pytest.raises(InvalidRunError) as excinfo:
        run_from_json({"code": "x" * 101}, LIMITS)
    assert excinfo.value.status == 413


def test_timeout_choices_stay_within_the_limits_and_include_default_and_maximum():
    limits = dataclasses.replace(LIMITS, default_timeout_seconds=7, max_timeout_seconds=40)
    choices = timeout_choices(limits)
    assert choices == sorted(choices)
    assert 7 in choices and choices[-1] == 40
    assert all(1 <= choice <= 40 for choice in choices)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"code": "print('\ud800')"}, "code", "unpaired UTF-16 surrogate"),
        ({"code": "print(input())", "stdin": "x\udfff"}, "stdin", "unpaired UTF-16 surrogate"),
        ({"code": "print(input())", "stdin": "a\x00b"}, "stdin", "NUL character"),
    ],
)
def test_text_no_run_pod_can_carry_is_refused(body, field, words):
    with pytest.raises(InvalidRunError) as caught:
        run_from_json(body, LIMITS)
    assert caught.value.status == 422
    assert words in caught.value.by_field()[field]
