"""A throwaway PKI made with the ``openssl`` command: a CA, and server certificates it signs.

    ca = ThrowawayCA(folder, "syncd test CA")
    cert, key = ca.issue("server", dns=["localhost"], ips=["127.0.0.1"])

``cryptography`` is not a dependency of syncd, so the ``openssl`` command does the work (it
ships with every Debian/RHEL machine; ``apt-get install -y openssl`` otherwise).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.skip("the openssl command is needed for the TLS tests: apt-get install -y openssl")
    return found


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run([openssl(), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")


class ThrowawayCA:
    def __init__(self, folder: Path, name: str = "syncd throwaway CA"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.cert = self.folder / "ca.pem"
        self.key = self.folder / "ca.key"
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(self.key), "-out", str(self.cert), cwd=self.folder)

    def issue(self, stem: str, *, dns: list[str] = (), ips: list[str] = (), cn: str | None = None
              ) -> tuple[Path, Path]:
        """A server certificate (and its key) for these names, signed by this CA."""
        key, csr, cert = (self.folder / f"{stem}.key", self.folder / f"{stem}.csr", self.folder / f"{stem}.pem")
        ext = self.folder / f"{stem}.ext"
        san = ",".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips])
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n")
        _run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", f"/CN={cn or (dns[0] if dns else ips[0])}", "-keyout", str(key), "-out", str(csr),
             cwd=self.folder)
        _run("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert), cwd=self.folder)
        key.chmod(0o600)
        return cert, key
