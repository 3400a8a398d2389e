"""A real mosquitto from Debian on a free loopback port, configured like the Fleet's broker:
anonymous access off, users from a password file made with mosquitto_passwd."""

from __future__ import annotations

import getpass
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.servers import Server, free_port, require_binary


@dataclass
class Broker:
    port: int
    users: dict[str, str]
    server: Server
    log: Path

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def start_mosquitto(workdir: Path, users: dict[str, str]) -> Broker:
    binary = require_binary("mosquitto")
    passwd = require_binary("mosquitto_passwd")
    workdir.mkdir(parents=True, exist_ok=True)
    password_file = workdir / "passwordfile"
    for index, (user, password) in enumerate(users.items()):
        create = ["-c"] if index == 0 else []
        subprocess.run([passwd, "-b", *create, str(password_file), user, password], check=True)
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                f"user {getpass.getuser()}",  # as root it would switch to 'mosquitto' otherwise
                f"listener {port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {password_file}",
                "persistence false",
                f"log_dest file {workdir / 'broker.log'}",
                "",
            ]
        )
    )
    server = Server([binary, "-c", str(conf)], workdir, lambda: _accepts(port), "mosquitto")
    return Broker(port, users, server, workdir / "broker.log")
