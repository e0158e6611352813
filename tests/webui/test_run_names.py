"""Run names are unguessable and only our own format is accepted."""

import re

from webui.run_names import is_run_name, new_run_name


def test_new_names_are_long_random_lowercase_base32():
    names = {new_run_name() for _ in range(1000)}
    assert len(names) == 1000
    for name in names:
        assert re.fullmatch(r"run-[a-z2-7]{24}", name), name
        assert len(name) <= 63  # a valid Kubernetes object name and label value


def test_only_names_of_our_format_are_accepted():
    assert is_run_name(new_run_name())
    for name in [
        "hello-abcde",
        "run-",
        "run-ABCDEFGHIJKLMNOPQRSTUVWX",
        "run-" + "a" * 23,
        "run-" + "a" * 25,
        "run-" + "1" * 24,
        "../etc/passwd",
        "",
    ]:
        assert not is_run_name(name), name
