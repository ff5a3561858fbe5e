"""The local control plane's certificates, made with the openssl command line.

One CA signs everything: the API server's serving certificate, the admin client certificate every
component and ``kubectl`` use (group ``system:masters``), and the spark-operator webhook's serving
certificate. Keys are PKCS#1 RSA (``-traditional``): the spark-operator parses its secret's keys as
PKCS#1 and regenerates the lot if they are anything else.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from coattail.errors import CoattailError

DAYS = 3650


class PkiError(CoattailError, RuntimeError):
    """openssl failed; the message carries its stderr."""


@dataclass(frozen=True)
class Pki:
    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def ca_cert(self) -> Path:
        return self.path("ca.crt")

    @property
    def ca_key(self) -> Path:
        return self.path("ca.key")


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")


def _key(pki: Pki, name: str) -> None:
    _openssl("genrsa", "-traditional", "-out", f"{name}.key", "2048", cwd=pki.root)


def _signed(pki: Pki, name: str, subject: str, *, sans: list[str] | None, client: bool) -> None:
    """``name``.key/.crt signed by the CA; ``sans`` like ``["IP:127.0.0.1", "DNS:localhost"]``."""
    _key(pki, name)
    usage = "clientAuth" if client else "serverAuth"
    ext = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if sans:
        ext.append("subjectAltName=" + ",".join(sans))
    (pki.root / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=pki.root)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", str(DAYS), "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.crt",
        cwd=pki.root,
    )  # fmt: skip


def create(root: Path, *, service_ip: str, webhook_dns: str) -> Pki:
    """Make every certificate under ``root`` unless it is already there (re-runs keep the CA)."""
    pki = Pki(root)
    root.mkdir(parents=True, exist_ok=True)
    if not pki.ca_cert.exists():
        _key(pki, "ca")
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=coattail-local-ca", "-days", str(DAYS),
            "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.crt",
            cwd=root,
        )  # fmt: skip
    if not pki.path("apiserver.crt").exists():
        dns = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        sans = ["IP:127.0.0.1", f"IP:{service_ip}", "DNS:localhost", *(f"DNS:{d}" for d in dns)]
        _signed(pki, "apiserver", "/CN=kube-apiserver", sans=sans, client=False)
    if not pki.path("admin.crt").exists():
        _signed(pki, "admin", "/O=system:masters/CN=coattail-admin", sans=None, client=True)
    if not pki.path("webhook.crt").exists():
        # The operator checks its certificate against <svc>.<namespace>.svc; the API server calls
        # it on 127.0.0.1.
        _signed(
            pki, "webhook", f"/CN={webhook_dns}", sans=[f"DNS:{webhook_dns}", "IP:127.0.0.1"], client=False
        )
    if not pki.path("sa.key").exists():
        _key(pki, "sa")
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=root)
    return pki
