"""Azurite, the real Azure Storage emulator (npm package `azurite`): Table Storage for the audit trail and the
work records, Queue Storage for queue-triggered deployments (its blob service runs too, unused).

Installed by `bin/tools` into localdev/azurite/node_modules from the lockfile. Each run gets its own
storage account whose key is made up at start, so no key is ever written into the repository.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .wiring import PROJECT_ROOT, free_port, stop, wait_listening

AZURITE = PROJECT_ROOT / "localdev" / "azurite" / "node_modules" / ".bin" / "azurite"
AZURITE_TABLE = AZURITE.with_name("azurite-table")  # installed with it; its presence means Azurite is there
ACCOUNT = "localaudit"
STOP_GRACE_SECONDS = 0.5


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int  # Table Storage
    key: str
    queue_port: int = 0

    @property
    def connection_string(self) -> str:
        """The form Functions reads from AzureWebJobsStorage, pointing at this emulator."""
        table = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        queue = f"http://127.0.0.1:{self.queue_port}/{ACCOUNT}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={self.key};TableEndpoint={table};"
            f"QueueEndpoint={queue};"
        )

    def stop(self) -> None:
        # Its services report "closed" at once, but the Queue service's timers keep the process up for ~10 s more;
        # its data is a throwaway folder, so it need not finish on its own.
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_azurite(folder: Path, log_path: Path, attempts: int = 3) -> Azurite:
    """Start Azurite's Table and Queue services on free loopback ports, storing their data under `folder`."""
    if not AZURITE.exists():
        raise RuntimeError(f"Azurite is not installed ({AZURITE} is missing): run bin/tools first.")
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    environment = {**os.environ, "AZURITE_ACCOUNTS": f"{ACCOUNT}:{key}"}
    for _ in range(attempts):
        # Azurite cannot report a port it chose itself, so they are picked for it
        port, queue_port, blob_port = free_port(), free_port(), free_port()
        command = [
            str(AZURITE),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(port),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(queue_port),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(blob_port),
            "--location",
            str(folder),
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
        ]
        with open(log_path, "ab") as output:
            process = subprocess.Popen(command, env=environment, stdout=output, stderr=output)
        try:
            listening = wait_listening(port, process) and wait_listening(queue_port, process)
        except BaseException:  # a signal or Ctrl+C while waiting must not leave Azurite behind
            stop(process)
            raise
        if listening:
            return Azurite(process, port, key, queue_port)
        stop(process)
    raise RuntimeError(f"Azurite did not start; see {log_path}")
