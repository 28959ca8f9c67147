"""Test certificates made with the openssl command: a CA, a server certificate for
127.0.0.1/localhost, and client certificates signed by the CA (mTLS)."""
from __future__ import annotations

import subprocess
from pathlib import Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


LEAF_EXTENSIONS = ("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n"
                   "authorityKeyIdentifier=keyid\n")


def make_ca(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    # Proper CA and leaf extensions: Python 3.13's default context verifies strictly
    # (VERIFY_X509_STRICT) and refuses a CA without key usage.
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=pylog test CA", "-keyout", "ca.key", "-out", "ca.pem",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash", cwd=d)
    (d / "san.cnf").write_text(LEAF_EXTENSIONS + "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
         "server.key", "-out", "server.csr", cwd=d)
    _run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.pem", cwd=d)
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def make_client(d: Path, name: str, subject: str) -> dict[str, Path]:
    _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout",
         f"{name}.key", "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.cnf").write_text(LEAF_EXTENSIONS)
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", f"{name}.cnf", "-out", f"{name}.pem",
         cwd=d)
    return {"cert": d / f"{name}.pem", "key": d / f"{name}.key"}
