"""`python -m bench [--quick]`: run the benchmarks on loopback and write docs/performance.md and .json.

Starts its own simulator, Azurite (for the audit trail, when the project has it) and service hosts on free
loopback ports; never touches anything else. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localdev.wiring import PROJECT_ROOT

from . import coldstart, gateway, images, management, overview, profiles, report, shared_gateway
from .stack import Stack

SECTIONS = ("gateway", "saturation", "reuse", "images", "management", "coldstart")
# Run only when named, and reported on their own: `--only overview --out docs/performance-overview.md`, or the
# shared gateway's `--only limiter,limits_two_hosts,failover --out docs/performance-gateway.md`.
EXTRA_SECTIONS = ("overview", *shared_gateway.SECTIONS)
KNOWN = (*SECTIONS, *EXTRA_SECTIONS)


def log(message: str) -> None:
    print(message, flush=True)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--", "services", "blueprints", "function_app.py", "localdev"))
    import importlib.metadata
    import importlib.util

    import openai

    versions = {}
    for package in ("uvicorn", "httptools", "uvloop", "h11", "starlette", "fastapi", "httpx2", "aiohttp", "pydantic"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    # What uvicorn's "auto" picks, in the host and the simulator alike.
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return {
        "packages": versions,
        "uvicorn_loop_http": f"{loop} + {http}",
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "openai_sdk": openai.__version__,
        "commit": commit,
        "service_code_uncommitted_changes": dirty,
        "source_digests_at_start": source_digests(),
    }


SERVICE_SOURCES = ("function_app.py", "blueprints", "services", "localdev/host.py", "localdev/simulator")


def source_digests() -> dict[str, str]:
    """A digest per file of the code the hosts and the simulator run, to tell what changed during the run."""
    digests = {}
    for name in SERVICE_SOURCES:
        path = PROJECT_ROOT / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digests[str(file.relative_to(PROJECT_ROOT))] = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    return digests


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _timed(results: dict[str, Any], name: str, work: Callable[[], Any]) -> None:
    started = time.perf_counter()
    log(f"== {name}")
    try:
        results[name] = work()
    except Exception as error:  # one failing section must not lose the others' figures
        log(f"   {name} failed: {type(error).__name__}: {error}")
        results[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    results.setdefault("durations_s", {})[name] = round(time.perf_counter() - started, 1)
    log(f"   ({results['durations_s'][name]} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: few requests per cell (under a minute)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(KNOWN)} (default: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy profiles of the missed targets (default: on for a full run, off with --quick)",
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "performance.md")
    parser.add_argument("--json", type=Path, default=None, help="raw figures (default: --out with .json)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (process logs, profiles)")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        metavar="JSON",
        help="run nothing: write the Markdown again from a raw-figures file of an earlier run",
    )
    args = parser.parse_args(argv)
    json_path = args.json or args.out.with_suffix(".json")
    if args.render is not None:
        previous = json.loads(args.render.read_text(encoding="utf-8"))
        if not any(name in previous for name in SECTIONS):  # a run of the extra sections only
            args.out.write_text(overview.render(previous, args.render.name), encoding="utf-8")
            log(f"wrote {args.out} from {args.render}")
            return 0
        previous["targets"] = report.evaluate(previous)
        args.out.write_text(report.render(previous, args.render.name), encoding="utf-8")
        log(f"wrote {args.out} from {args.render}")
        return 0
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(KNOWN))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    quick = args.quick

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    results: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": "python -m bench"
        + (" --quick" if quick else "")
        + (f" --only {','.join(wanted)}" if wanted != list(SECTIONS) else ""),
    }
    log(
        f"bench ({results['mode']}) in {work}; {results['machine']['cpus']} CPUs, Python {results['machine']['python']}"
    )
    stack = Stack(work)
    try:
        main_host = stack.start_service("host")
        if "gateway" in wanted:
            plan = gateway.quick_plan() if quick else gateway.full_plan()
            _timed(results, "gateway", lambda: asyncio.run(gateway.overhead_matrix(stack, main_host, plan, log)))
        if "saturation" in wanted:
            count = 200 if quick else 5000
            _timed(results, "saturation", lambda: asyncio.run(gateway.saturation(stack, main_host, count, 64, log)))
        if "reuse" in wanted:

            def reuse() -> dict[str, Any]:
                count = 100 if quick else 1000
                out = {
                    "fresh_host": asyncio.run(gateway.reuse(stack, count, 64, "host-reuse")),
                    "warm_host": asyncio.run(
                        gateway.reuse_warm(stack, main_host, 100 if quick else 500, 64, 0 if quick else 6.0)
                    ),
                    "pool_size": int(stack.environment().get("INFERENCE_POOL_SIZE") or 100),
                }
                if not quick:
                    out["renewal"] = asyncio.run(gateway.token_renewal(stack, lifetime=310, seconds=22, concurrency=8))
                return out

            _timed(results, "reuse", reuse)
        if "images" in wanted:

            def image_section() -> dict[str, Any]:
                stack.configure(identityLatencyMs=20, dataPlaneLatencyMs=0)
                baseline = stack.start_baseline()
                try:
                    counts = {"100 KB": 6, "2 MB": 4, "20 MB": 1} if quick else {"100 KB": 90, "2 MB": 60, "20 MB": 9}
                    out: dict[str, Any] = {"identity_latency_ms": 20}
                    out["latency"] = images.latency(stack, main_host, baseline, counts)
                    log(_image_line(out["latency"]))
                    out["concurrency"] = images.concurrency(main_host, baseline, 8 if quick else 48, 2 * images.MIB)
                    log(
                        "   c=8 (failed, wrong): "
                        + json.dumps({k: (v["failed"], v["wrong_answers"]) for k, v in out["concurrency"].items()})
                    )
                finally:
                    stack.stop_child(baseline)
                sizes = ("2 MB",) if quick else tuple(images.SIZES)
                out["memory"] = {
                    "service": images.peak_memory(stack, lambda name: stack.start_service(name), "service", sizes),
                    "baseline": images.peak_memory(stack, lambda name: stack.start_baseline(name), "baseline", sizes),
                }
                stack.configure(identityLatencyMs=0)
                return out

            _timed(results, "images", image_section)
        if "management" in wanted:

            def manage() -> dict[str, Any]:
                out: dict[str, Any] = {}
                if not quick:  # the settings as deployed: ARM_POLL_INTERVAL_SECONDS unset (10 s)
                    out["default settings"] = management.run(stack, main_host, cycles=2, reads=20)
                fast = stack.start_service("host-poll1", ARM_POLL_INTERVAL_SECONDS="1")
                try:
                    out["ARM_POLL_INTERVAL_SECONDS=1"] = management.run(
                        stack, fast, cycles=1 if quick else 3, reads=3 if quick else 20
                    )
                finally:
                    stack.stop_child(fast)
                return out

            _timed(results, "management", manage)
        if "coldstart" in wanted:

            def cold() -> dict[str, Any]:
                out = coldstart.run(stack, runs=1 if quick else 5)
                service = coldstart.import_times(stack, "import function_app")
                out["importtime"] = {"function_app": service}
                if not quick:
                    floor = coldstart.import_times(stack, "import bench.floor_app")
                    out["importtime"]["floor"] = floor
                    out["importtime"]["added_by_service"] = coldstart.added_modules(service, floor)
                    # What the first management and chat requests import lazily, on top of function_app.
                    out["importtime"]["first_requests"] = coldstart.import_times(
                        stack, "import function_app; import azure.identity; import services.inference; import httpx2"
                    )
                for data in out["importtime"].values():
                    data.pop("_names", None)
                return out

            _timed(results, "coldstart", cold)
        if "overview" in wanted:
            _timed(results, "overview", lambda: overview.run(stack, 5 if quick else 15, log))

        mine = [name for name in wanted if name in shared_gateway.SECTIONS]
        if mine:
            _timed(results, "shared_gateway", lambda: shared_gateway.run(stack, mine, quick, log))
        try:
            targets = report.evaluate(results)
        except Exception as error:  # the raw figures must still be written
            log(f"   evaluating the targets failed: {type(error).__name__}: {error}")
            targets = []
        results["targets"] = targets
        if args.profile if args.profile is not None else not quick:
            _timed(results, "profiles", lambda: _profiles(stack, targets, quick))
    finally:
        stack.close()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    before, after = results["machine"].pop("source_digests_at_start"), source_digests()
    results["machine"]["sources_changed_during_run"] = sorted(
        name for name in set(before) | set(after) if before.get(name) != after.get(name)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    if set(wanted) <= {"overview"}:
        rendered = overview.render(results, json_path.name)
    elif set(wanted) <= set(shared_gateway.SECTIONS):
        rendered = shared_gateway.render(results)
    else:
        rendered = report.render(results, json_path.name)
    args.out.write_text(rendered, encoding="utf-8")
    log(f"wrote {args.out} and {json_path} in {results['duration_s']} s")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"work folder kept: {work}")
    return 0


def _image_line(latency: dict[str, Any]) -> str:
    parts = [
        f"{label}: service {row['service']['p50']:.1f} ms, baseline {row['baseline']['p50']:.1f} ms"
        for label, row in latency.items()
    ]
    return "   " + "; ".join(parts)


def _profiles(stack: Stack, targets: list[dict[str, Any]], quick: bool) -> dict[str, Any]:
    missed = {t["id"] for t in targets if t["met"] is False}
    if missed & {"gateway_c1_p99", "host_cpu_c1"}:
        missed.add("gateway_c1")
    seconds = 1.5 if quick else 6.0
    out: dict[str, Any] = {"for_missed_targets": sorted(missed), "gateway": [], "images": None, "allocations": None}
    if profiling_unavailable := (profiles.profiling.py_spy() is None):
        out["error"] = "py-spy is not installed (pip install -r bench/requirements.txt)"
    if missed & {"gateway_c1", "gateway_ratio_c16", "stream_first_chunk"} and not profiling_unavailable:
        out["gateway"].append(profiles.gateway_profile(stack, stream=False, concurrency=1, seconds=seconds))
        log("   gateway plain c=1 profiled")
        if not quick:
            out["gateway"].append(profiles.gateway_profile(stack, stream=True, concurrency=1, seconds=seconds))
            log("   gateway stream c=1 profiled")
    if missed & {"image_speedup"} and not profiling_unavailable and not quick:
        out["images"] = profiles.image_profile(stack, size=2 * images.MIB, seconds=seconds)
        log("   process_image profiled")
    if "image_memory" in missed:
        out["allocations"] = [profiles.image_allocations(size) for size in (2 * images.MIB, 20 * images.MIB)]
        out["upload_copies"] = profiles.upload_copies(stack, 20 * images.MIB)
    return out


if __name__ == "__main__":
    sys.exit(main())
