"""Serve `bench.floor_app` with the project's local host code, exactly as `python -m localdev.host` serves
`function_app` (same logging set-up, settings loading, route table from `app.get_functions()`, uvicorn).

    python -m bench.floor_host --port P
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from localdev import host


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host.configure_logging()
    host.load_local_settings(Path(os.devnull))
    functions = host.registered_functions("bench.floor_app")
    prefix = host.route_prefix_from_host_json()
    print(f"Functions:\n{host.describe(functions, '', prefix)}")
    sys.stdout.flush()
    import uvicorn  # as host.serve does, for another module

    asgi = host.build_app(functions, route_prefix=prefix)
    uvicorn.run(asgi, host="127.0.0.1", port=args.port, log_level=os.environ.get("LOCALDEV_LOG_LEVEL", "info"))


if __name__ == "__main__":
    main()
