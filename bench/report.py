"""Targets (met / missed by how much) and the Markdown of docs/performance.md, from the raw results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

DATA_PLANE = "https://cognitiveservices.azure.com"
READING = Path(__file__).with_name("reading.md")
TIMES = "\u00d7"


def _get(data: Any, *path: Any) -> Any:
    for key in path:
        found = (isinstance(data, dict) and key in data) or (
            isinstance(data, list) and isinstance(key, int) and -len(data) <= key < len(data)
        )
        if found:
            data = data[key]
        else:
            return None
    return data


def _cell(results: dict[str, Any], latency: int, concurrency: int, stream: bool) -> dict[str, Any] | None:
    cells = results.get("gateway")
    if not isinstance(cells, list):
        return None
    for cell in cells:
        if (cell["backend_latency_ms"], cell["concurrency"], cell["stream"]) == (latency, concurrency, stream):
            return cell
    return None


def _target(
    ident: str, text: str, measured: float | None, limit: float, unit: str, *, at_most: bool = True, shown: str = ""
) -> dict[str, Any]:
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return {"id": ident, "target": text, "measured": "not measured", "met": None, "by": ""}
    met = measured <= limit if at_most else measured >= limit
    gap = measured - limit if at_most else limit - measured
    share = f" ({gap / limit * 100:.0f}% of the target)" if limit else ""
    by = "" if met else f"missed by {gap:.{_digits(gap)}f}{unit}{share}"
    return {
        "id": ident,
        "target": text,
        "measured": shown or f"{measured:.{_digits(measured)}f}{unit}",
        "met": met,
        "by": by,
    }


def _digits(value: float) -> int:
    value = abs(value)
    return 2 if value < 10 else 1 if value < 100 else 0


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets = []
    plain1 = _cell(results, 0, 1, False)
    targets.append(
        _target(
            "host_cpu_c1",
            "Host CPU per proxied chat request (plain, concurrency 1) ≤ 1.5 ms",
            _get(plain1, "cpu_ms_per_request", "gateway", "host"),
            1.5,
            " ms",
        )
    )
    targets.append(
        _target(
            "gateway_c1",
            "Gateway overhead, concurrency 1, median ≤ 1.0 ms",
            _get(plain1, "latency", "diff", "p50"),
            1.0,
            " ms",
        )
    )
    targets.append(
        _target(
            "gateway_c1_p99",
            "Gateway overhead, concurrency 1, p99 ≤ 3.0 ms",
            _get(plain1, "latency", "diff", "p99"),
            3.0,
            " ms",
        )
    )
    c16 = _cell(results, 50, 16, False)
    targets.append(
        _target(
            "gateway_ratio_c16",
            "At 50 ms backend latency, gateway/direct median ≤ 1.05 at concurrency 16",
            _get(c16, "latency", "ratio"),
            1.05,
            "\u00d7",
        )
    )
    stream1 = _cell(results, 0, 1, True)
    targets.append(
        _target(
            "stream_first_chunk",
            "Streaming time to first chunk through the gateway ≤ 1.5 ms more than direct (median, concurrency 1)",
            _get(stream1, "first_chunk", "diff", "p50"),
            1.5,
            " ms",
        )
    )
    saturation = _get(results, "saturation")
    if isinstance(saturation, dict) and saturation.get("runs"):
        runs = saturation["runs"]
        errors = sum(run["errors"] for run in runs)
        shown = "; ".join(
            f"{'streamed' if run['stream'] else 'plain'}: {run['errors']} of {run['requests']}"
            + (f" ({', '.join(f'{n}{TIMES} {k}' for k, n in run['error_kinds'].items())})" if run["errors"] else "")
            for run in runs
        )
    else:
        errors, shown = None, ""
    targets.append(
        _target(
            "errors_c64",
            "Errors through the gateway at concurrency 64, 50 ms backend, 5,000 requests plain and 5,000 streamed = 0",
            errors,
            0,
            "",
            shown=shown,
        )
    )
    fresh = _get(results, "reuse", "fresh_host")
    tokens = _get(fresh, "token_requests", DATA_PLANE) if fresh else None
    renewal = _get(results, "reuse", "renewal")
    token_text = f"{tokens} in {_get(fresh, 'requests')} requests (token lifetime 3600 s)" if tokens is not None else ""
    if renewal and "token_requests" in renewal:
        token_text += (
            f"; {renewal['token_requests']} in {renewal['served_s']:.0f} s with {renewal['renew_every_s']} s "
            f"usable lifetime (≤ {renewal['expected_at_most']} allowed)"
        )
    worst = tokens
    if renewal and "token_requests" in renewal and tokens is not None:
        worst = max(tokens, renewal["token_requests"] - renewal["expected_at_most"] + 1)
    targets.append(
        _target(
            "token_per_lifetime", "≤ 1 token-endpoint call per token lifetime per scope", worst, 1, "", shown=token_text
        )
    )
    pool = _get(results, "reuse", "pool_size") or 100
    requests_done = _get(fresh, "requests") or 0
    # Connections are opened while the pool fills and then reused, so they do not scale with the request
    # count: below 1,000 requests the count itself is compared (it is what 1,000 requests would open at least).
    connections = _get(fresh, "connections_per_1000") if requests_done >= 1000 else _get(fresh, "connections")
    steady = _get(results, "reuse", "warm_host", "phases", "steady")
    shown = ""
    if connections is not None:
        shown = f"{_get(fresh, 'connections')} in {requests_done} requests from a fresh host, concurrency 64"
        if steady:
            shown += f"; {steady['connections']} in {steady['requests']} more on a warm host"
    targets.append(
        _target(
            "connections",
            f"New connections to the simulator per 1,000 gateway requests ≤ the pool size ({pool})",
            connections,
            pool,
            "",
            shown=shown,
        )
    )
    memory = _get(results, "images", "memory", "service")
    if isinstance(memory, dict) and memory:
        # 100 KB is shown but not judged: its extra is within the RSS noise of a few hundred KiB.
        judged = [label for label in memory if label != "100 KB"] or list(memory)
        worst_label = max(judged, key=lambda label: memory[label]["extra_ratio"])
        ratio = memory[worst_label]["extra_ratio"]
        shown = ", ".join(f"{label}: {row['extra_ratio']:.2f}\u00d7" for label, row in memory.items())
        targets.append(
            _target(
                "image_memory",
                "process_image peak extra memory ≤ 1.5\u00d7 the image size (2 MB and 20 MB)",
                ratio,
                1.5,
                "\u00d7",
                shown=shown,
            )
        )
    else:
        targets.append(
            _target("image_memory", "process_image peak extra memory ≤ 1.5\u00d7 the image size", None, 1.5, "\u00d7")
        )
    speedup = _get(results, "images", "latency", "2 MB", "speedup")
    targets.append(
        _target(
            "image_speedup",
            "process_image median ≥ 4\u00d7 lower than the baseline, 2 MB, concurrency 1, identity 20 ms",
            speedup,
            4.0,
            "\u00d7",
            at_most=False,
        )
    )
    conc = _get(results, "images", "concurrency", "service")
    failures = (conc["failed"] + conc["wrong_answers"]) if conc else None
    base = _get(results, "images", "concurrency", "baseline")
    targets.append(
        _target(
            "image_concurrency",
            "process_image at concurrency 8, distinct images: zero failures or wrong answers",
            failures,
            0,
            "",
            shown=(
                f"service {failures} of {conc['requests']}; baseline {base['failed']} failed + "
                f"{base['wrong_answers']} wrong of {base['requests']}"
                if conc and base
                else ""
            ),
        )
    )
    first_chat = _get(results, "coldstart", "kinds", "chat", "first_to_warm_ratio")
    targets.append(
        _target(
            "first_chat",
            "First chat request after a cold start ≤ 1.3\u00d7 a later one on the same host (medians)",
            first_chat,
            1.3,
            "\u00d7",
        )
    )
    ratio = _get(results, "coldstart", "kinds", "management", "ratio_to_floor")
    targets.append(
        _target(
            "coldstart", "Cold start to first management answer ≤ 1.2\u00d7 the floor (median)", ratio, 1.2, "\u00d7"
        )
    )
    return targets


# Markdown


def _ms(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    return f"{value:.{_digits(value)}f}"


def _signed(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    return f"{value:+.{_digits(value)}f}"


def _triple(summary: dict[str, Any]) -> str:
    return f"{_ms(summary['p50'])} / {_ms(summary['p95'])} / {_ms(summary['p99'])}"


def _status(target: dict[str, Any]) -> str:
    if target["met"] is None:
        return "not measured"
    return "**met**" if target["met"] else f"**missed**, {target['by']}"


def render(results: dict[str, Any], json_name: str) -> str:
    m = results["machine"]
    out: list[str] = []
    add = out.append
    add("# Performance")
    add("")
    add(
        f"Generated by `{results['command']}` ({results['mode']} run, {results.get('duration_s', 0):.0f} s) on "
        f"{results['started_at']}. Raw figures: [`{json_name}`]({json_name}). How to run it: "
        "[`bench/README.md`](../bench/README.md)."
    )
    add("")
    add("| Machine | |")
    add("|---|---|")
    add(f"| CPUs | {m['cpus']} ({m['cpu_model'] or 'unknown model'}) |")
    add(f"| Python | {m['python']} ({m['implementation']}), {m['platform']} |")
    add(f"| openai SDK | {m['openai_sdk']} |")
    if m.get("uvicorn_loop_http"):
        packages = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v)
        add(f"| uvicorn (host and simulator) | event loop + HTTP parser: {m['uvicorn_loop_http']} |")
        add(f"| Packages | {packages} |")
    dirty = (
        " + uncommitted changes in services/, function_app.py or localdev/"
        if m["service_code_uncommitted_changes"]
        else ""
    )
    add(f"| Code | commit {m['commit']}{dirty} |")
    add("")
    changed = m.get("sources_changed_during_run")
    if changed:
        add(
            f"**Warning:** {', '.join(f'`{name}`' for name in changed)} changed while this run went on, so processes "
            "started after the change ran other code than those started before it (each host imports the code when "
            "it starts). Figures of the paths that code is on may mix the two versions."
        )
        add("")
    add(
        "Everything runs on this one machine on loopback: the load generator (this process), the service's local "
        "host (`python -m localdev.host`, uvicorn), the Azure simulator, Azurite (audit trail) and the baseline "
        f"app share {m['cpus']} cores, so absolute figures are those of a small, shared box. Direct and gateway "
        "(service and baseline) always run in the same run, interleaved, and only medians and percentiles are "
        "reported."
    )
    add("")
    add("## Targets")
    add("")
    add("| Target | Measured | Result |")
    add("|---|---|---|")
    for target in results.get("targets", []):
        add(f"| {target['target']} | {target['measured']} | {_status(target)} |")
    add("")
    _gateway(results, add)
    _saturation(results, add)
    _reuse(results, add)
    _images(results, add)
    _management(results, add)
    _coldstart(results, add)
    _profiles(results, add)
    if READING.exists():
        add(READING.read_text(encoding="utf-8").rstrip())
        add("")
    errors = {
        name: section["error"] for name, section in results.items() if isinstance(section, dict) and "error" in section
    }
    if errors:
        add("## Sections that failed in this run")
        add("")
        for name, error in errors.items():
            add(f"- `{name}`: {error}")
        add("")
    return "\n".join(out) + "\n"


def _gateway(results: dict[str, Any], add: Any) -> None:
    cells = results.get("gateway")
    add("## 1. Gateway overhead")
    add("")
    if not isinstance(cells, list):
        add(f"Not measured ({_get(results, 'gateway', 'error') or 'section not run'}).")
        add("")
        return
    add(
        "The same chat request (`vision`, one 9-word user message, answer 10 words) sent (a) directly to the "
        "simulator's data plane with `openai.AsyncAzureOpenAI` and a token from the simulator's identity endpoint, "
        "and (b) through the service's `/api/openai/deployments/{deployment}/chat/completions` with the same SDK "
        "client class. One asyncio loop drives both; each cell runs blocks of a side in the order A B B A A B B A "
        "after a warm-up on both sides. Δ is gateway minus direct of the same percentile (the p50 Δ with a 95% "
        "bootstrap interval); the ratio is of the medians; req/s is each side's requests over its blocks' summed "
        "wall time. Streaming: first = time to the first chunk the SDK yields, last = time to the end of the "
        "stream. CPU ms/req is the host's user+system CPU per gateway request (/proc), a figure the machine's "
        "noise hardly moves."
    )
    add("")
    add(
        "| Backend | Conc. | Mode | n/side | Direct p50 / p95 / p99 ms | Gateway p50 / p95 / p99 ms | "
        "Δ p50 [95% CI] | Δ p95 | Δ p99 | Ratio p50 | req/s direct / gateway | Host CPU ms/req | Errors d/g |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cell in cells:
        metrics = (
            [("first", cell["first_chunk"]), ("last", cell["total"])]
            if cell["stream"]
            else [("plain", cell["latency"])]
        )
        for label, data in metrics:
            ci = data["diff_p50_ci95"]
            add(
                f"| {cell['backend_latency_ms']} ms | {cell['concurrency']} | {label} | {cell['requests_per_side']} | "
                f"{_triple(data['direct'])} | {_triple(data['gateway'])} | {_signed(data['diff']['p50'])} "
                f"[{_signed(ci[0])}, {_signed(ci[1])}] | {_signed(data['diff']['p95'])} | "
                f"{_signed(data['diff']['p99'])} | "
                f"{data['ratio']:.3f} | {cell['rps']['direct']:.0f} / {cell['rps']['gateway']:.0f} | "
                f"{_ms(_get(cell, 'cpu_ms_per_request', 'gateway', 'host'))} | "
                f"{cell['errors']['direct'] + cell['wrong_answers']['direct']} / "
                f"{cell['errors']['gateway'] + cell['wrong_answers']['gateway']} |"
            )
    add("")
    failed = [
        f"{cell['backend_latency_ms']} ms c={cell['concurrency']} {'stream' if cell['stream'] else 'plain'} {side}: "
        + ", ".join(f"{n}\u00d7 {kind}" for kind, n in kinds.items())
        for cell in cells
        for side, kinds in cell.get("error_kinds", {}).items()
        if kinds
    ]
    if failed:
        add("Errors (client side, not retried): " + "; ".join(failed) + ".")
        add("")
    add("CPU per request of every process (ms; `client` is the load generator, which runs the same SDK on both sides):")
    add("")
    add("| Backend | Conc. | Mode | Direct: client / simulator | Gateway: client / host / simulator |")
    add("|---|---|---|---|---|")
    for cell in cells:
        d = _get(cell, "cpu_ms_per_request", "direct") or {}
        g = _get(cell, "cpu_ms_per_request", "gateway") or {}
        add(
            f"| {cell['backend_latency_ms']} ms | {cell['concurrency']} | {'stream' if cell['stream'] else 'plain'} | "
            f"{_ms(d.get('client'))} / {_ms(d.get('simulator'))} | "
            f"{_ms(g.get('client'))} / {_ms(g.get('host'))} / {_ms(g.get('simulator'))} |"
        )
    add("")


def _saturation(results: dict[str, Any], add: Any) -> None:
    section = results.get("saturation")
    add("### Errors under load")
    add("")
    if not isinstance(section, dict) or "runs" not in section:
        add(f"Not measured ({_get(section, 'error') or 'section not run'}).")
        add("")
        return
    add(
        "Through the gateway only, backend latency 50 ms, after a 5.2 s pause (so the host's pooled connections "
        "have just been closed by the simulator's 5 s keep-alive when the burst starts); the SDK client does not "
        "retry (max_retries=0), so every error the service answers is counted."
    )
    add("")
    add("| Mode | Conc. | Requests | Errors | Wrong answers | req/s | Error kinds |")
    add("|---|---|---|---|---|---|---|")
    for run in section["runs"]:
        kinds = ", ".join(f"{n}\u00d7 {kind}" for kind, n in run["error_kinds"].items()) or "\u2013"
        add(
            f"| {'streamed' if run['stream'] else 'plain'} | {run['concurrency']} | {run['requests']} | "
            f"{run['errors']} | {run['wrong_answers']} | {run['rps']:.0f} | {kinds} |"
        )
    add("")


def _reuse(results: dict[str, Any], add: Any) -> None:
    section = results.get("reuse")
    add("## 2. Reuse: token-endpoint calls and connections")
    add("")
    if not isinstance(section, dict) or "fresh_host" not in section:
        add(f"Not measured ({_get(section, 'error') or 'section not run'}).")
        add("")
        return
    fresh = section["fresh_host"]
    add(
        f"A freshly started host, then {fresh['requests']} gateway requests (plain and streamed alternating) at "
        f"concurrency {fresh['concurrency']} from cold, counted by the simulator's `/_sim/stats` (cleared after "
        "the host started). `connections` counts distinct client (host, port) pairs the simulator saw: every TCP "
        "connection the host opened to it, for the data plane and the identity endpoint (a port reused by the "
        "kernel within the run would be counted once; with ~28,000 ephemeral ports that does not happen here)."
    )
    add("")
    add("| Requests | Errors | Token requests (per scope) | per 1,000 | New connections | per 1,000 | Pool size |")
    add("|---|---|---|---|---|---|---|")
    tokens = ", ".join(f"{scope}: {n}" for scope, n in fresh["token_requests"].items()) or "none"
    per = ", ".join(f"{n:.1f}" for n in fresh["token_requests_per_1000"].values()) or "0"
    add(
        f"| {fresh['requests']} | {fresh['errors']} | {tokens} | {per} | {fresh['connections']} | "
        f"{fresh['connections_per_1000']:.1f} | {section['pool_size']} |"
    )
    add("")
    warm = section.get("warm_host")
    if warm:
        add(
            f"The long-running host (idle for a while after the overhead matrix), at concurrency "
            f"{warm['concurrency']}: the simulator's stats cleared once, then each phase's growth of the distinct "
            "client (host, port) pairs, so a kept-alive connection used again is not counted again:"
        )
        add("")
        add("| Phase | Requests | New connections | Token requests | Errors |")
        add("|---|---|---|---|---|")
        for phase, row in warm["phases"].items():
            errors = "" if row["errors"] is None else row["errors"]
            add(f"| {phase} | {row['requests']} | {row['connections']} | {row['token_requests']} | {errors} |")
        add("")
    renewal = section.get("renewal")
    if renewal and "token_requests" in renewal:
        add(
            f"Renewal: with the simulator issuing tokens that live {renewal['token_lifetime_s']} s (so both the "
            f"service and MSAL renew after {renewal['renew_every_s']} s, 300 s before expiry), a fresh host served "
            f"{renewal['requests']} requests in {renewal['served_s']:.1f} s at concurrency 8 and made "
            f"**{renewal['token_requests']}** data-plane token requests (one per lifetime allows at most "
            f"{renewal['expected_at_most']}); errors: {renewal['errors']}."
        )
        add("")


def _images(results: dict[str, Any], add: Any) -> None:
    section = results.get("images")
    add("## 3. Image path: `process_image` against the original sample")
    add("")
    if not isinstance(section, dict) or "latency" not in section:
        add(f"Not measured ({_get(section, 'error') or 'section not run'}).")
        add("")
        return
    add(
        "The baseline (`bench/baseline_app.py`) does per request what the original sample did: a new "
        "`DefaultAzureCredential`, a new `AzureOpenAI` client, the upload written to one fixed `temp.jpg`, read "
        "back, base64-encoded, then chat completions; a synchronous handler in a thread pool sized like the "
        "Functions Python worker's, on uvicorn in its own process, with the same identity settings and simulator. "
        f"The simulator's identity endpoint answers in {section.get('identity_latency_ms', 20)} ms. Latency: one "
        "request at a time, the two apps alternating request by request, every image distinct; MB/s = image size "
        "/ median latency."
    )
    add("")
    add(
        "| Image | n/app | Service p50 / p95 / p99 ms | Baseline p50 / p95 / p99 ms | Baseline ÷ service (p50) | "
        "Direct floor p50 ms | Above floor: service / baseline ms | Service MB/s | Baseline MB/s | Failures s/b |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|")
    for label, row in section["latency"].items():
        above = row.get("above_floor_ms", {})
        add(
            f"| {label} | {row['service']['n'] + row['service']['failures']} | {_triple(row['service'])} | "
            f"{_triple(row['baseline'])} | {row['speedup']:.2f}\u00d7 | {_ms(_get(row, 'direct', 'p50'))} | "
            f"{_ms(above.get('service'))} / {_ms(above.get('baseline'))} | {row['service']['mb_per_s']:.1f} | "
            f"{row['baseline']['mb_per_s']:.1f} | {row['service']['failures']} / {row['baseline']['failures']} |"
        )
    add("")
    add(
        "Direct floor: the same chat body (built beforehand) posted by the bench straight to the simulator with a "
        "token: what any app pays for the upload and the simulator's own work (JSON parse, base64 decode, hashing, "
        "its request log). CPU per request of each process, ms (host = the service's host):"
    )
    add("")
    add(
        "| Image | Service: host / simulator | Baseline: baseline app / simulator | Direct: simulator | "
        "Token-endpoint calls per request: service / baseline |"
    )
    add("|---|---|---|---|---|")
    for label, row in section["latency"].items():
        sc = _get(row, "service", "cpu_ms_per_request") or {}
        bc = _get(row, "baseline", "cpu_ms_per_request") or {}
        dc = _get(row, "direct", "cpu_ms_per_request") or {}
        add(
            f"| {label} | {_ms(sc.get('host'))} / {_ms(sc.get('simulator'))} | {_ms(bc.get('baseline'))} / "
            f"{_ms(bc.get('simulator'))} | {_ms(dc.get('simulator'))} | "
            f"{_get(row, 'service', 'token_requests_per_request') or 0:.2f} / "
            f"{_get(row, 'baseline', 'token_requests_per_request') or 0:.2f} |"
        )
    add("")
    memory = section.get("memory")
    if memory:
        add(
            "Peak extra memory of the serving process: a fresh process per app and size, warmed with three 100 KB "
            "images, peak RSS reset (`/proc/<pid>/clear_refs` 5), one image sent; extra = VmHWM after \u2212 VmRSS "
            "before. (A 1 ms VmRSS sampler agrees within a few MB.)"
        )
        add("")
        add("| Image | Service extra MiB | Service ÷ image | Baseline extra MiB | Baseline ÷ image |")
        add("|---|---|---|---|---|")
        for label in memory.get("service", {}):
            s = memory["service"][label]
            b = memory.get("baseline", {}).get(label, {})
            add(
                f"| {label} | {s['extra_bytes'] / 2**20:.1f} | {s['extra_ratio']:.2f}\u00d7 | "
                f"{b.get('extra_bytes', math.nan) / 2**20:.1f} | {b.get('extra_ratio', math.nan):.2f}\u00d7 |"
            )
        add("")
    conc = section.get("concurrency")
    if conc:
        add("Concurrency 8, distinct 2 MB images (an answer is wrong when its sha256 prefix is another image's):")
        add("")
        add("| App | Requests | Failed (non-200) | Wrong answers | Statuses | p50 / p95 ms | MB/s |")
        add("|---|---|---|---|---|---|---|")
        for name, row in conc.items():
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(row["statuses"].items()))
            add(
                f"| {name} | {row['requests']} | {row['failed']} | {row['wrong_answers']} | {statuses} | "
                f"{_ms(row['latency']['p50'])} / {_ms(row['latency']['p95'])} | {row['mb_per_s']:.1f} |"
            )
        add("")


def _management(results: dict[str, Any], add: Any) -> None:
    section = results.get("management")
    add("## 4. Management path")
    add("")
    if not isinstance(section, dict) or "error" in section or not section:
        add(f"Not measured ({_get(section, 'error') or 'section not run'}).")
        add("")
        return
    first_variant = next(iter(section.values()))
    add(
        "Cycles of deploy (PUT, new deployment) → scale (PATCH capacity) → delete, each with `?wait=60`, against the "
        f"simulator with provisioningDelaySeconds = {first_variant['provisioning_delay_s']} and Retry-After "
        f"{first_variant['retry_after_s']} s on the operation's first answer (the simulator's operation-status "
        "answers carry no Retry-After, as ARM's often do not). ARM calls are the simulator's request-log entries "
        "carrying the call's own `x-ms-client-request-id`. Reporting delay = the moment the bench received the "
        "service's answer minus the simulator operation's `endTime` (`startTime` + provisioningDelaySeconds: the "
        "instant any poll would see Succeeded); both are wall-clock times on this machine. Mutations also write the "
        "audit record (Azurite) before calling ARM, as run-local does."
    )
    add("")
    add(
        "| Settings | Operation | n | Wall p50 / max ms | ARM calls (median) | ARM calls by kind, per operation | "
        "Reporting delay p50 / max ms | Failures |"
    )
    add("|---|---|---|---|---|---|---|---|")
    for variant, data in section.items():
        for label, op in data["operations"].items():
            kinds = ", ".join(f"{k} {v:g}" for k, v in sorted(op["arm_calls_by_kind_per_op"].items()))
            add(
                f"| {variant} | {label} | {op['n']} | {_ms(op['wall']['p50'])} / {_ms(op['wall']['max'])} | "
                f"{op['arm_calls_median']} | {kinds} | {_ms(op['reporting_delay']['p50'])} / "
                f"{_ms(op['reporting_delay']['max'])} | {op['failures']} |"
            )
        for label, read in data["reads"].items():
            add(
                f"| {variant} | {label} (GET) | {read['wall']['n']} | {_ms(read['wall']['p50'])} / "
                f"{_ms(read['wall']['max'])} | {read['arm_calls_median']} | | | |"
            )
    add("")
    for variant, data in section.items():
        first = data["first_call"]
        add(
            f"- {variant}: the host's first management call took {first['seconds'] * 1000:.0f} ms and fetched the "
            f"ARM token ({first['arm_token_requests']} token request); {data['arm_token_requests_total']} ARM-scope "
            "token request(s) in all."
        )
    add("")


def _coldstart(results: dict[str, Any], add: Any) -> None:
    section = results.get("coldstart")
    add("## 5. Cold start")
    add("")
    if not isinstance(section, dict) or "kinds" not in section:
        add(f"Not measured ({_get(section, 'error') or 'section not run'}).")
        add("")
        return
    add(
        f"From `Popen` to the first 200, {section['runs']} run(s) per kind, kinds interleaved; the bench opens a "
        "new loopback connection every 5 ms until the port accepts, then sends the request. Floor: "
        "`bench/floor_app.py` (one route returning a constant, same azurefunctions-extensions-http-fastapi types) "
        "served by the same local host code (`bench/floor_host.py` calls `localdev.host`). The identity endpoint "
        "answers at once here (identityLatencyMs 0)."
    )
    add("")
    add(
        "| Kind | First 200, median s | Listening, median s | First request, median s | Ratio to floor | "
        "First 200 request alone / the same request next, median ms | All runs (s) |"
    )
    add("|---|---|---|---|---|---|---|")
    for kind, row in section["kinds"].items():
        runs = ", ".join(f"{v:.2f}" for v in row["first_ok_s"])
        ratio = f"{row['ratio_to_floor']:.2f}\u00d7" if "ratio_to_floor" in row else "1"
        warm = (
            f"{row['first_200_request_median_s'] * 1000:.1f} / {row['later_request_median_s'] * 1000:.1f} "
            f"({row['first_to_warm_ratio']:.2f}\u00d7)"
            if "first_to_warm_ratio" in row
            else "\u2013"
        )
        add(
            f"| {kind} | {row['first_ok_median_s']:.3f} | {row['listening_median_s']:.3f} | "
            f"{row['first_request_median_s']:.3f} | {ratio} | {warm} | {runs} |"
        )
    add("")
    imports = section.get("importtime", {})
    main = imports.get("function_app")
    if main:
        add(
            f'`python -X importtime -c "import function_app"`: {main["modules"]} modules, {main["wall_s"]:.2f} s '
            "wall for the whole interpreter run. Top 10 by cumulative time:"
        )
        add("")
        add("| Module | Cumulative ms | Self ms |")
        add("|---|---|---|")
        for entry in main["top"]:
            add(f"| `{entry['module']}` | {entry['cumulative_ms']:.1f} | {entry['self_ms']:.1f} |")
        add("")
        floor = imports.get("floor")
        added = imports.get("added_by_service")
        if floor and added:
            add(
                f"The floor's `import bench.floor_app` loads {floor['modules']} modules in {floor['wall_s']:.2f} s "
                f"(interpreter run). The service's start-up loads {added['count']} modules the floor does not, "
                f"{added['self_ms_total']:.0f} ms of their own import time under -X importtime (which inflates it); "
                "the largest:"
            )
            add("")
            add("| Module (not imported by the floor) | Self ms |")
            add("|---|---|")
            for entry in added["top"]:
                add(f"| `{entry['module']}` | {entry['self_ms']:.1f} |")
            add("")
        first = imports.get("first_requests")
        if first:
            names = [entry["module"] for entry in first["top_level"]]
            after = names.index("function_app") + 1 if "function_app" in names else len(names)
            lazy = first["top_level"][after:]
            if lazy:
                add(
                    "Imported lazily by the first requests, on top of what `function_app` already loaded "
                    "(`-X importtime`, cumulative): "
                    + ", ".join(f"`{entry['module']}` {entry['cumulative_ms']:.0f} ms" for entry in lazy)
                    + "."
                )
                add("")


def _profiles(results: dict[str, Any], add: Any) -> None:
    section = results.get("profiles")
    if not isinstance(section, dict):
        return
    add("## Profiles of the missed targets")
    add("")
    if section.get("error"):
        add(section["error"])
        add("")
    add(
        "Sampled with py-spy (`--gil`: only samples where a thread holds the GIL, i.e. runs Python; idle event-loop "
        "and worker-thread waits are dropped, and so are samples inside imports, which are start-up cost). The "
        "host runs under py-spy in its own process with the load named, pinned to one CPU while the load generator "
        "and the simulator share the other (py-spy samples wall-clock time: on a shared core, a host waiting for "
        "the CPU inside a socket write would look like time spent writing). py-spy pauses the process to sample, "
        "so shares matter, not absolute times."
    )
    add("")
    for profile in [*section.get("gateway", []), section.get("images")]:
        if not profile:
            continue
        if "error" in profile:
            add(f"- {profile['name']}: {profile['error']}")
            continue
        summary = profile["summary"]
        add(f"### {profile['name']}: {profile['load']} ({profile['requests']} requests, {summary['samples']} samples)")
        add("")
        add("By package of the innermost frame:")
        add("")
        add("| Share | Package |")
        add("|---|---|")
        for row in summary["areas"][:10]:
            add(f"| {row['share'] * 100:.1f}% | {row['frame']} |")
        add("")
        add("Top frames by own time:")
        add("")
        add("| Share | Frame |")
        add("|---|---|")
        for row in summary["self"][:12]:
            add(f"| {row['share'] * 100:.1f}% | `{row['frame']}` |")
        add("")
        add("Where the time under the service's own frames goes (share of the samples under each):")
        add("")
        for item in profile["breakdowns"]:
            if not item["samples"]:
                continue
            share = item["samples"] / summary["samples"] * 100 if summary["samples"] else 0
            add(f"- `{item['root']}`: {share:.0f}% of all samples")
            for child in item["children"][:6]:
                add(f"  - {child['share'] * 100:.0f}% `{child['frame']}`")
        add("")
    allocations = section.get("allocations")
    if allocations:
        add("### Allocations of the image path (tracemalloc replay of the service's own steps)")
        add("")
        add("| Image | Step | Held ÷ image | Peak so far ÷ image |")
        add("|---|---|---|---|")
        for item in allocations:
            for step in item["steps"]:
                add(
                    f"| {item['bytes'] // 2**20} MiB | {step['step']} | {step['held_x']:.2f}\u00d7 | "
                    f"{step['peak_x']:.2f}\u00d7 |"
                )
        add("")
    upload = section.get("upload_copies")
    if upload:
        add(
            f"What the HTTP client allocates while uploading the body of a {upload['bytes'] // 2**20} MiB image as "
            "pieces (tracemalloc in the bench process, httpx2 posting to the simulator; the pieces exist before "
            "tracing starts): base64 image as one piece (as the service sent it before slicing): "
            f"peak **{upload['one piece']['peak_x']:.2f}\u00d7** the image; the same piece cut into 768 KiB "
            f"slices (as `services/images.py` `chat_body` makes them now, 576 KiB of image each): "
            f"**{upload['768 KiB slices']['peak_x']:.2f}\u00d7**."
        )
        add("")
