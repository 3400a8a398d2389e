"""HTTP probing: directly (aiohttp, one session, bounded concurrency) or through blackbox_exporter.

The direct prober uses aiohttp rather than httpx: at 100-200 concurrent probes httpx's pool costs
2-4x the socket limit while aiohttp stays at it (bench/probe_fanout.py, bench/README.md).

Every direct probe closes its connection (a fleet is thousands of distinct hosts: a kept-alive
pool only holds file handles); probes through blackbox_exporter keep theirs to it. Concurrency
stays below the process's open-file limit. A probe that fails because *this* machine ran out of
something (file handles, ports, buffers) says nothing about the target: it is "unknown", never a
failure. Of an exporter's answer only the probe metrics are read (`probe_values`).
"""

from __future__ import annotations

import asyncio
import errno
import glob
import json
import os
import re
import resource
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fleet_alerting.config.schema import BlackboxConfig, FileSdTargets, HttpTarget
from fleet_alerting.config.secrets import read_small_file
from fleet_alerting.core.incidents import Incident
from fleet_alerting.core.keys import signal_key
from fleet_alerting.core.policy import recover_unseen
from fleet_alerting.core.signals import Severity, Signal, ignoring

SOURCE = "blackbox"
LOCALLY = "not probed: this machine ran out of resources"
FD_RESERVE = 64  # handles kept free for the store, logs, the Prefect client and the event loop
LOCAL_EXHAUSTION = {
    errno.EMFILE,  # too many open files (this process)
    errno.ENFILE,  # too many open files (this machine)
    errno.ENOBUFS,
    errno.ENOMEM,
    errno.EADDRNOTAVAIL,  # no local port left
}


@dataclass(frozen=True)
class ProbeTarget:
    name: str
    url: str
    severity: Severity
    expected_status: tuple[int, ...] = (200,)
    module: str = "http_2xx"
    runbook_url: str | None = None
    remediation: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    target: ProbeTarget
    ok: bool
    status: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    tls_days_left: float | None = None
    observed: bool = True  # False: blackbox_exporter could not probe, the target is unknown


def from_config(target: HttpTarget) -> ProbeTarget:
    return ProbeTarget(
        name=target.name,
        url=target.url,
        severity=target.severity,
        expected_status=tuple(target.expected_status),
        module=target.module,
        runbook_url=target.runbook_url,
        remediation=tuple(target.remediation),
        labels=dict(target.labels),
    )


MAX_FILE_SD_BYTES = 16 * 1024 * 1024  # ~100,000 targets; more is not a target list


def load_targets(config: BlackboxConfig, base_dir: Path) -> tuple[list[ProbeTarget], list[str]]:
    """Targets from the config and file_sd files; problems (one per bad file or entry) are
    returned, not raised, so one broken file never hides the other targets."""
    targets = [from_config(t) for t in config.targets]
    problems: list[str] = []
    for group in config.file_sd:
        for pattern in group.files:
            paths = sorted(glob.glob(str(base_dir / pattern)))
            if not paths:
                problems.append(f"{base_dir / pattern}: no file_sd file matches")
            for path in paths:
                found, errors = _read_file_sd(Path(path), group)
                targets += found
                problems += errors
    unique = {t.url: t for t in targets}  # the same endpoint listed twice is probed once
    return list(unique.values()), problems


def _read_file_sd(path: Path, group: FileSdTargets) -> tuple[list[ProbeTarget], list[str]]:
    try:
        entries = json.loads(read_small_file(path, MAX_FILE_SD_BYTES))
    except OSError as exc:
        return [], [f"{path}: cannot read file_sd targets: {exc.strerror}"]
    except UnicodeDecodeError:
        return [], [f"{path}: cannot read file_sd targets: not UTF-8 text"]
    except json.JSONDecodeError as exc:
        return [], [f"{path}:{exc.lineno}: not valid JSON: {exc.msg}"]
    if not isinstance(entries, list):
        return [], [f"{path}: expected a list of {{targets, labels}} groups"]
    targets, problems = [], []
    for index, entry in enumerate(entries):
        hosts = entry.get("targets") if isinstance(entry, dict) else None
        labels = entry.get("labels", {}) if isinstance(entry, dict) else None
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            problems.append(f"{path}: [{index}].targets: expected a list of host:port strings")
            continue
        if not isinstance(labels, dict):
            problems.append(f"{path}: [{index}].labels: expected a mapping")
            continue
        for host in hosts:
            instance = str(labels.get("instance") or host.split(":")[0])
            targets.append(
                ProbeTarget(
                    name=f"{instance} {group.path}",
                    url=f"{group.scheme}://{host}{group.path}",
                    severity=group.severity,
                    expected_status=tuple(group.expected_status),
                    module=group.module,
                    runbook_url=group.runbook_url,
                    remediation=tuple(group.remediation),
                    labels={str(k): str(v) for k, v in labels.items()} | {"instance": instance},
                )
            )
    return targets, problems


def open_file_budget(wanted: int) -> tuple[int, str | None]:
    """How many probes may run at once without exhausting this process's open files: the soft
    RLIMIT_NOFILE is raised towards the hard limit if needed, then `wanted` is capped below it
    (minus the handles already open and a reserve). Returns the cap and, when it binds, why."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = _open_handles()
    needed = in_use + FD_RESERVE + wanted
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted, None
    budget = max(1, soft - in_use - FD_RESERVE)
    if budget >= wanted:
        return wanted, None
    return budget, (
        f"concurrency capped at {budget} (configured {wanted}): the open-file limit is {soft} "
        f"and {in_use} handles are in use; raise it with `ulimit -n`"
    )


def _open_handles() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


async def probe_all(
    targets: Sequence[ProbeTarget], config: BlackboxConfig, notes: list[str] | None = None
) -> list[ProbeResult]:
    """Probe all targets, at most `config.concurrency` at a time (less if the open-file limit
    says so, explained in `notes`); one result per target, in order."""
    timeout = config.timeout.total_seconds()
    concurrency, capped = open_file_budget(min(config.concurrency, max(len(targets), 1)))
    if capped and notes is not None:
        notes.append(capped)
    gate = asyncio.Semaphore(concurrency)
    # each target its own connection, closed after its probe; the exporter one kept-alive pool
    exporter = config.mode == "exporter"
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=not exporter, ttl_dns_cache=300)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(target: ProbeTarget) -> ProbeResult:
            async with gate:
                if config.mode == "exporter":
                    return await _via_exporter(session, target, config.exporter_url or "", timeout)
                return await _direct(session, target, timeout)

        return list(await asyncio.gather(*(one(t) for t in targets)))


def _unknown(target: ProbeTarget, exc: OSError) -> ProbeResult:
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "resource exhausted")
    return ProbeResult(target, False, error=f"{LOCALLY} ({reason})", observed=False)


async def _direct(
    session: aiohttp.ClientSession, target: ProbeTarget, timeout: float
) -> ProbeResult:
    started = time.perf_counter()
    try:
        async with session.get(target.url, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            tls_days = _tls_days_left(resp)
            await resp.read()
            latency = (time.perf_counter() - started) * 1000
            ok = resp.status in target.expected_status
            error = None if ok else f"HTTP {resp.status} (expected {_codes(target)})"
            return ProbeResult(target, ok, resp.status, round(latency, 1), error, tls_days)
    except TimeoutError:
        return ProbeResult(target, False, error=f"timed out after {timeout:g}s")
    except aiohttp.ClientConnectorCertificateError as exc:
        return ProbeResult(
            target, False, error=f"TLS certificate rejected: {exc.certificate_error}"
        )
    except aiohttp.ClientConnectorError as exc:
        if exc.os_error.errno in LOCAL_EXHAUSTION:
            return _unknown(target, exc.os_error)
        return ProbeResult(target, False, error=f"cannot connect: {exc.os_error.strerror or exc}")
    except aiohttp.ClientError as exc:
        return ProbeResult(target, False, error=f"HTTP error: {type(exc).__name__}")
    except OSError as exc:
        if exc.errno in LOCAL_EXHAUSTION:
            return _unknown(target, exc)
        return ProbeResult(target, False, error=f"cannot connect: {exc.strerror or exc}")


def _codes(target: ProbeTarget) -> str:
    return "/".join(str(c) for c in target.expected_status)


def _tls_days_left(resp: aiohttp.ClientResponse) -> float | None:
    if resp.connection is None or resp.connection.transport is None:
        return None
    cert = resp.connection.transport.get_extra_info("peercert")
    if not cert or "notAfter" not in cert:
        return None
    expires = ssl.cert_time_to_seconds(cert["notAfter"])
    return round((expires - time.time()) / 86400, 1)


async def _via_exporter(
    session: aiohttp.ClientSession, target: ProbeTarget, exporter_url: str, timeout: float
) -> ProbeResult:
    query = urlencode({"module": target.module, "target": target.url})
    url = f"{exporter_url.rstrip('/')}/probe?{query}"
    try:
        # blackbox_exporter bounds the probe by the module timeout; allow it a little more.
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout + 1)) as resp:
            body = await resp.text()
            if resp.status != 200:
                detail = body.strip()[:200]
                return _unobserved(target, f"blackbox_exporter HTTP {resp.status}: {detail}")
    except TimeoutError:
        return _unobserved(target, f"blackbox_exporter timed out after {timeout + 1:g}s")
    except aiohttp.ClientError as exc:
        return _unobserved(target, f"blackbox_exporter unreachable: {type(exc).__name__}")
    return parse_exporter(target, body)


def _unobserved(target: ProbeTarget, error: str) -> ProbeResult:
    return ProbeResult(target, False, error=error, observed=False)


# what a probe's result is read from (the rest of the answer is the exporter's own detail)
PROBE_METRICS = (
    "probe_success",
    "probe_http_status_code",
    "probe_duration_seconds",
    "probe_ssl_earliest_cert_expiry",
)
_EXPOSITION_LINE = re.compile(
    r"#.*|[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})? [-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN)"
    r"(?: -?[0-9]+)?|",
    re.ASCII,
)


def probe_values(body: str) -> dict[str, float] | None:
    """PROBE_METRICS of an answer whose every line has the exposition format's form, the probe
    metrics unlabelled (as blackbox_exporter writes them); None for any other answer, which
    the full parser then reads — and names what is wrong with."""
    values: dict[str, float] = {}
    for line in body.splitlines():
        if not _EXPOSITION_LINE.fullmatch(line):
            return None
        if line.startswith("probe_"):
            name, _, rest = line.partition(" ")
            if name.partition("{")[0] in PROBE_METRICS:
                if "{" in name:
                    return None
                values.setdefault(name, float(rest.partition(" ")[0]))
    return values if "probe_success" in values else None


def parse_exporter(target: ProbeTarget, body: str) -> ProbeResult:
    values = probe_values(body)
    if values is None:
        values = {}
        try:
            for family in text_string_to_metric_families(body):
                for sample in family.samples:
                    values.setdefault(sample.name, sample.value)
        except ValueError as exc:
            return _unobserved(target, f"unparseable blackbox_exporter answer: {str(exc)[:200]}")
    if "probe_success" not in values:
        return _unobserved(target, "blackbox_exporter answer lacks probe_success")
    ok = values["probe_success"] == 1
    status = int(values.get("probe_http_status_code", 0)) or None
    latency = values.get("probe_duration_seconds")
    expiry = values.get("probe_ssl_earliest_cert_expiry")
    tls_days = round((expiry - time.time()) / 86400, 1) if expiry else None
    error = None
    if not ok:
        error = (
            f"HTTP {status} (probe failed, module {target.module})"
            if status
            else (f"probe failed (module {target.module}, no HTTP answer)")
        )
    return ProbeResult(
        target,
        ok,
        status,
        round(latency * 1000, 1) if latency is not None else None,
        error,
        tls_days,
    )


def to_signal(result: ProbeResult) -> Signal:
    target = result.target
    evidence: dict[str, object] = {}
    if result.status is not None:
        evidence["status"] = result.status
    if result.latency_ms is not None:
        evidence["latency_ms"] = result.latency_ms
    if result.tls_days_left is not None:
        evidence["tls_days_left"] = result.tls_days_left
    summary = f"{target.name} is up" if result.ok else f"{target.name} failed: {result.error}"
    signal = Signal(
        key=signal_key(SOURCE, url=target.url),
        source=SOURCE,
        firing=not result.ok,
        severity=target.severity,
        summary=summary,
        target=target.url,
        runbook_url=target.runbook_url,
        remediation=target.remediation,
        labels=target.labels,
        evidence=evidence,
    )
    # the latency differs on every probe: shown, but a steady failure is not rewritten for it
    return ignoring(signal, "latency_ms")


EXPORTER_SOURCE = f"{SOURCE}-exporter"
LOCAL_SOURCE = f"{SOURCE}-local"


def exporter_outage(results: Sequence[ProbeResult], exporter_url: str) -> list[Signal]:
    """One warning per cause naming every target that could not be probed (and why):
    blackbox_exporter failing, or this machine out of file handles or ports. Those targets were
    not observed, so their own incidents neither fire nor resolve this run."""
    unprobed = [r for r in results if not r.observed]
    local = [r for r in unprobed if (r.error or "").startswith(LOCALLY)]
    exporter = [r for r in unprobed if r not in local]
    signals = []
    if exporter:
        signals.append(
            _not_probed(
                exporter,
                signal_key(EXPORTER_SOURCE, exporter=exporter_url),
                EXPORTER_SOURCE,
                "blackbox_exporter could not probe",
                exporter_url,
                "Check that blackbox_exporter is up and reachable from the Prefect worker, and "
                "that the targets' modules exist in its blackbox.yml",
            )
        )
    if local:
        signals.append(
            _not_probed(
                local,
                signal_key(LOCAL_SOURCE, resource="probing"),
                LOCAL_SOURCE,
                "this machine could not probe",
                "",
                "Raise the open-file limit of the Prefect worker (`ulimit -n`, LimitNOFILE= in "
                "its systemd unit) or lower blackbox.concurrency",
            )
        )
    return signals


def _not_probed(
    results: Sequence[ProbeResult], key: str, source: str, what: str, target: str, fix: str
) -> Signal:
    failed: dict[str, list[str]] = {}
    for result in results:
        failed.setdefault(result.error or "no answer", []).append(result.target.name)
    names = [n for group in failed.values() for n in group]
    why = "; ".join(f"{error} ({len(group)})" for error, group in failed.items())
    listed = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return Signal(
        key=key,
        source=source,
        firing=True,
        severity=Severity.warning,
        summary=f"{what} {len(names)} target(s): {listed} — {why}",
        target=target,
        remediation=(fix,),
        labels={"targets": ",".join(names)},
    )


def unseen(
    signals: Sequence[Signal],
    incidents: Iterable[Incident],
    results: Sequence[ProbeResult],
    complete: bool,
) -> list[Signal]:
    """Ok-signals for what this run no longer mentions, and only what it looked at: with a
    targets file unreadable (`complete` false) a target missing from the list may still be meant,
    and a target the exporter could not probe is unknown."""
    incidents = list(incidents)
    unknown = {signal_key(SOURCE, url=r.target.url) for r in results if not r.observed}
    out = recover_unseen(signals, incidents, f"{SOURCE}-config", "targets readable again")
    out += recover_unseen(signals, incidents, EXPORTER_SOURCE, "blackbox_exporter probes again")
    out += recover_unseen(signals, incidents, LOCAL_SOURCE, "this machine probes again")
    if complete:
        out += recover_unseen(signals, incidents, SOURCE, "no longer probed")
    return [s for s in out if s.key not in unknown]
