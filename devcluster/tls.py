"""A throw-away certificate authority and serving certificate, made with the `openssl` CLI.

Clients such as kubectl (client-go) refuse to send bearer tokens over plain HTTP, so the
server speaks TLS like a real one; the kubeconfig carries the CA.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Certificates:
    directory: str
    ca_cert: str
    server_cert: str
    server_key: str

    def ca_data(self) -> str:
        """The CA in base64, as kubeconfig `certificate-authority-data` wants it."""
        with open(self.ca_cert, "rb") as handle:
            return base64.b64encode(handle.read()).decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def _openssl(*args: str) -> None:
    completed = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {completed.stderr.strip()}")


def make_certificates(directory: str | None = None) -> Certificates:
    """A CA plus a server certificate for 127.0.0.1/localhost (EC P-256: fast to make)."""
    directory = directory or tempfile.mkdtemp(prefix="devcluster-tls-")
    os.makedirs(directory, exist_ok=True)
    ca_key, ca_cert = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.crt")
    key, csr = os.path.join(directory, "server.key"), os.path.join(directory, "server.csr")
    cert, ext = os.path.join(directory, "server.crt"), os.path.join(directory, "server.ext")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(
        "req",
        "-x509",
        *curve,
        "-keyout",
        ca_key,
        "-out",
        ca_cert,
        "-days",
        "3650",
        "-subj",
        "/CN=devcluster-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    _openssl("req", *curve, "-keyout", key, "-out", csr, "-subj", "/CN=devcluster-apiserver")
    with open(ext, "w", encoding="ascii") as handle:
        handle.write(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
            "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
        )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca_cert,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        cert,
        "-days",
        "3650",
        "-extfile",
        ext,
    )
    for path in (ca_key, key):
        os.chmod(path, 0o600)
    return Certificates(directory, ca_cert, cert, key)
