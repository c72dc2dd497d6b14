"""Local Azure simulator: managed-identity endpoint + ARM model deployments on one loopback port."""

from .app import build_app
from .config import ConfigError
from .server import RunningSimulator, start_in_thread

__all__ = ["ConfigError", "RunningSimulator", "build_app", "start_in_thread"]
