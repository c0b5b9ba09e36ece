"""The files in deploy/ work with the programs of the Debian release docs/operations.md names (12)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fleet_server.devtools.local_broker import Mosquitto
from tests.support.fleet_broker import DeployBroker
from tests.support.tls import make_tls

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def test_the_nginx_site_passes_nginx_t_on_debian_12(tmp_path):
    """Our site file, included from a main config the way Debian's nginx.conf includes sites-enabled/."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: apt-get install nginx-light (bash run.sh test does)", pytrace=False)
    tls = make_tls(tmp_path / "tls")
    site = (DEPLOY / "nginx" / "palaute.conf").read_text()
    for path, dummy in {"/etc/ssl/palaute/fullchain.pem": tls.server_cert,
                        "/etc/ssl/palaute/privkey.pem": tls.server_key}.items():
        assert path in site, f"deploy/nginx/palaute.conf no longer names {path}"
        site = site.replace(path, str(dummy))
    (tmp_path / "palaute.conf").write_text(site)
    (tmp_path / "logs").mkdir()
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/logs/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {tmp_path}/palaute.conf;\n}}\n"
    )
    run = subprocess.run([NGINX, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "logs" / "error.log"),
                          "-c", str(main)], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0, run.stderr
    assert "[warn]" not in run.stderr and "[emerg]" not in run.stderr, run.stderr


@pytest.mark.broker
def test_every_mosquitto_config_we_write_loads_without_deprecation_notes(tmp_path):
    with Mosquitto(tmp_path / "local") as local:
        pass
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / "passwd").write_text("")
    (auth / "acl").write_text("")
    with DeployBroker(tmp_path / "deploy", auth / "passwd", auth / "acl") as deployed:
        pass
    for conf, log in ((local.config_path, local.log()), (tmp_path / "deploy" / "mosquitto.conf", deployed.log)):
        text = conf.read_text()
        assert "message_size_limit" not in text and "max_packet_size" in text, conf
        assert "recommended to replace" not in log and "deprecated" not in log.lower(), log
