"""Cross-site posts are refused; same-origin posts and tools without the headers are not."""

import pytest

from webui.origin_check import is_cross_site

HOST = "coderun.example:8080"


@pytest.mark.parametrize(
    ("method", "headers", "refused"),
    [
        ("POST", {}, False),  # curl and scripts send neither header
        ("POST", {"Sec-Fetch-Site": "same-origin"}, False),
        ("POST", {"Sec-Fetch-Site": "none"}, False),
        ("POST", {"Sec-Fetch-Site": "cross-site"}, True),
        ("POST", {"Sec-Fetch-Site": "same-site"}, True),
        ("POST", {"Origin": "http://coderun.example:8080"}, False),
        ("POST", {"Origin": "https://coderun.example:8080"}, False),
        ("POST", {"Origin": "https://evil.example"}, True),
        ("POST", {"Origin": "http://coderun.example"}, True),  # another port is another origin
        ("POST", {"Origin": "null"}, True),
        # Sec-Fetch-Site is the browser's own verdict and wins over Origin.
        ("POST", {"Sec-Fetch-Site": "cross-site", "Origin": "http://coderun.example:8080"}, True),
        ("GET", {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, False),
        ("HEAD", {"Origin": "https://evil.example"}, False),
    ],
)
def test_cross_site_requests(method, headers, refused):
    assert is_cross_site(method, headers, HOST) is refused
