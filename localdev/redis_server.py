"""A local Redis (Debian's `redis-server`) for the limits' counters and failover trips, on a free loopback port.

Installed by `bin/redis` when missing. Each run gets its own password, made up at start and kept in a config file
readable only by this user (never on a command line): locally it stands in for the Microsoft Entra ID
authentication the service uses against Azure Managed Redis. Nothing is persisted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .wiring import free_port, stop, wait_listening


@dataclass
class LocalRedis:
    process: subprocess.Popen[bytes]
    port: int
    password: str
    config: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self) -> dict[str, str]:
        """The app settings that point the service at this Redis."""
        return {"REDIS_HOST": self.host, "REDIS_PASSWORD": self.password, "REDIS_SSL": "false"}

    def stop(self) -> None:
        stop(self.process)

    def start(self) -> None:
        """Start it again on the same port (after `stop`), with the same password."""
        self.process = _spawn(self.config, self.config.with_suffix(".log"))
        if not wait_listening(self.port, self.process):
            raise RuntimeError(f"redis-server did not restart; see {self.config.with_suffix('.log')}")


def redis_server() -> str | None:
    return shutil.which("redis-server")


def start_redis(folder: Path, attempts: int = 3) -> LocalRedis:
    if redis_server() is None:
        raise RuntimeError("redis-server is not installed: run bin/redis (apt-get install -y redis-server).")
    password = secrets.token_urlsafe(24)
    for _ in range(attempts):
        port = free_port()
        config = folder / f"redis-{port}.conf"
        config.write_text(
            f'bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave ""\nappendonly no\ndir {folder}\n'
            "protected-mode yes\n",
            encoding="utf-8",
        )
        os.chmod(config, 0o600)
        process = _spawn(config, config.with_suffix(".log"))
        try:
            listening = wait_listening(port, process)
        except BaseException:
            stop(process)
            raise
        if listening:
            return LocalRedis(process, port, password, config)
        stop(process)
    raise RuntimeError(f"redis-server did not start; see the logs in {folder}")


def _spawn(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as output:
        return subprocess.Popen([str(redis_server()), str(config)], stdout=output, stderr=output)
