"""A throw-away CA and server certificate made with the openssl CLI, for TLS tests.

Deliberately the same commands an operator would run (docs/operations.md), so the
tests also prove those commands produce certificates Mosquitto and paho accept.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def mosquitto_lines(self) -> str:
        """Listener lines for local_broker.Mosquitto(extra_config=...)."""
        return "\n".join(
            [
                f"cafile {self.ca_cert}",
                f"certfile {self.server_cert}",
                f"keyfile {self.server_key}",
                "tls_version tlsv1.2",
            ]
        )


def _run(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str = "ca") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=directory)
    _run(
        "req", "-x509", "-new", "-key", str(key), "-sha256", "-days", "2",
        "-subj", f"/CN=Palaute test {name}", "-out", str(cert),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )
    return cert, key


def make_tls(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    ca_cert, ca_key = make_ca(directory)
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key), cwd=directory)
    _run("req", "-new", "-key", str(key), "-subj", "/CN=localhost", "-out", str(csr), cwd=directory)
    _run(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )
    # Mosquitto runs as the invoking user here; in production keyfile is 0640 root:mosquitto.
    key.chmod(0o600)
    return TlsFiles(ca_cert, ca_key, cert, key)
