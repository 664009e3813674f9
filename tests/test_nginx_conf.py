"""docs/nginx.conf, the proxy config the docs tell operators to use in front, is valid for the
nginx these machines have (Debian's): checked with ``nginx -t``, certificates and paths swapped
for temporary ones."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parent.parent / "docs" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@pytest.mark.skipif(NGINX is None or shutil.which("openssl") is None, reason="needs nginx and openssl")
def test_the_shipped_nginx_conf_passes_nginx_t(tmp_path: Path) -> None:
    key, cert = str(tmp_path / "key.pem"), str(tmp_path / "cert.pem")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=t",
            "-keyout",
            key,
            "-out",
            cert,
        ],
        check=True,
        capture_output=True,
    )
    site = (
        CONF.read_text()
        .replace("/etc/letsencrypt/live/iiif.museum.example/fullchain.pem", str(tmp_path / "cert.pem"))
        .replace("/etc/letsencrypt/live/iiif.museum.example/privkey.pem", str(tmp_path / "key.pem"))
        .replace("/var/cache/nginx/iiif", str(tmp_path / "cache"))
    )
    assert "/etc/" not in site and "/var/" not in site  # nothing outside tmp_path is touched
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "logs").mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n"
    )
    result = subprocess.run(
        [str(NGINX), "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
