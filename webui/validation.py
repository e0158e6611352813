"""Checks a run request from the form or the JSON API against the configured run limits.

Pure: no Flask, no Kubernetes. Every problem becomes a `FieldError` with a sentence that says
what was wrong and what to do; the caller keeps the user's text and shows the sentences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coderun_operator.settings import RunLimits

# Time limits offered in the form, filtered to the configured maximum.
_TIMEOUT_STEPS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 900, 1800, 3600)
API_FIELDS = ("code", "stdin", "timeoutSeconds")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field; ``too_large`` marks a size limit (HTTP 413)."""

    field: str
    message: str
    too_large: bool = False


class InvalidRunError(ValueError):
    """The request cannot become a run; ``errors`` says why, field by field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors

    @property
    def status(self) -> int:
        """413 when something is over a size limit, else 422."""
        return 413 if any(error.too_large for error in self.errors) else 422

    @property
    def first(self) -> FieldError:
        """The error to report when there is room for only one (size errors first)."""
        return sorted(self.errors, key=lambda error: not error.too_large)[0]

    def by_field(self) -> dict[str, str]:
        """The first message for each field, for showing next to the form's inputs."""
        result: dict[str, str] = {}
        for error in self.errors:
            result.setdefault(error.field, error.message)
        return result


@dataclass(frozen=True)
class RunRequest:
    """A valid request for one run."""

    code: str
    stdin: str | None = None
    timeout_seconds: int | None = None

    def spec(self) -> dict[str, Any]:
        """The CodeRun ``spec``; fields left out take the operator's defaults."""
        spec: dict[str, Any] = {"code": self.code}
        if self.stdin is not None:
            spec["stdin"] = self.stdin
        if self.timeout_seconds is not None:
            spec["timeoutSeconds"] = self.timeout_seconds
        return spec


def timeout_choices(limits: RunLimits) -> list[int]:
    """Time limits to offer: round steps up to the maximum, plus the default and the maximum."""
    choices = {step for step in _TIMEOUT_STEPS if step <= limits.max_timeout_seconds}
    choices |= {limits.default_timeout_seconds, limits.max_timeout_seconds}
    return sorted(choices)


def _normalise_newlines(text: str) -> str:
    # Browsers send textarea line breaks as CRLF; Python source and input() expect LF.
    return text.replace("\r\n", "\n")


def _check_code(code: str, limits: RunLimits, errors: list[FieldError]) -> None:
    if not code.strip():
        errors.append(FieldError("code", "Type some Python code to run."))
    elif len(code) > limits.max_code_chars:
        errors.append(
            FieldError(
                "code",
                f"The code is {len(code):,} characters long; the limit is "
                f"{limits.max_code_chars:,}. Shorten it and run again.",
                too_large=True,
            )
        )
    elif "\x00" in code:
        errors.append(
            FieldError("code", "The code contains a NUL character, which Python cannot run.")
        )
    elif not _is_unicode(code):
        errors.append(FieldError("code", _NOT_UNICODE.format(what="The code")))


_NOT_UNICODE = (
    "{what} contains a broken character (an unpaired UTF-16 surrogate); remove it and run again."
)


def _is_unicode(text: str) -> bool:
    """False for text with unpaired surrogates, which no UTF-8 system can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_stdin(stdin: str, limits: RunLimits, errors: list[FieldError]) -> None:
    if "\x00" in stdin:
        errors.append(
            FieldError(
                "stdin",
                "The input contains a NUL character, which cannot be passed to the snippet.",
            )
        )
    elif not _is_unicode(stdin):
        errors.append(FieldError("stdin", _NOT_UNICODE.format(what="The input")))
    elif len(stdin) > limits.max_stdin_chars:
        errors.append(
            FieldError(
                "stdin",
                f"The input is {len(stdin):,} characters long; the limit is "
                f"{limits.max_stdin_chars:,}. Shorten it and run again.",
                too_large=True,
            )
        )


def _timeout_error(limits: RunLimits) -> FieldError:
    return FieldError(
        "timeoutSeconds",
        f"Choose a time limit from 1 to {limits.max_timeout_seconds} seconds.",
    )


def _check_timeout(value: int, limits: RunLimits, errors: list[FieldError]) -> int | None:
    if not 1 <= value <= limits.max_timeout_seconds:
        errors.append(_timeout_error(limits))
        return None
    return value


def run_from_form(form: Mapping[str, str], limits: RunLimits) -> RunRequest:
    """A run from the page's form fields ``code``, ``stdin`` and ``timeoutSeconds``.

    An empty ``stdin`` means no input at all (``input()`` then fails at once with EOFError);
    a missing ``timeoutSeconds`` (the original form sent only ``code``) takes the default.
    """
    errors: list[FieldError] = []
    code = _normalise_newlines(form.get("code", ""))
    _check_code(code, limits, errors)
    stdin = _normalise_newlines(form.get("stdin", ""))
    _check_stdin(stdin, limits, errors)
    timeout: int | None = None
    raw_timeout = form.get("timeoutSeconds", "").strip()
    if raw_timeout:
        if raw_timeout.isascii() and raw_timeout.isdigit():
            timeout = _check_timeout(int(raw_timeout), limits, errors)
        else:
            errors.append(_timeout_error(limits))
    if errors:
        raise InvalidRunError(errors)
    return RunRequest(code=code, stdin=stdin or None, timeout_seconds=timeout)


def run_from_json(body: Any, limits: RunLimits) -> RunRequest:
    """A run from a JSON API body ``{"code": ..., "stdin": ..., "timeoutSeconds": ...}``."""
    if not isinstance(body, dict):
        raise InvalidRunError(
            [FieldError("", "The request body must be a JSON object with at least a code field.")]
        )
    errors: list[FieldError] = []
    for key in body:
        if key not in API_FIELDS:
            errors.append(
                FieldError(
                    str(key),
                    f"Unknown field {key!r}; the fields are code, stdin and timeoutSeconds.",
                )
            )
    code = body.get("code")
    if not isinstance(code, str):
        errors.append(FieldError("code", "code must be a string of Python source."))
    else:
        _check_code(code, limits, errors)
    stdin = body.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        errors.append(FieldError("stdin", "stdin must be a string, or null for no input."))
    elif isinstance(stdin, str):
        _check_stdin(stdin, limits, errors)
    timeout = body.get("timeoutSeconds")
    if timeout is not None:
        # bool is an int in Python, but true is not a time limit.
        if isinstance(timeout, bool) or not isinstance(timeout, int):
            errors.append(_timeout_error(limits))
            timeout = None
        else:
            timeout = _check_timeout(timeout, limits, errors)
    if errors:
        raise InvalidRunError(errors)
    assert isinstance(code, str)
    return RunRequest(code=code, stdin=stdin, timeout_seconds=timeout)
