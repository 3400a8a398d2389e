"""Run the real `amtool config routes test` (differential tests and the benchmark)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from fleet_alerting.audit.synth import label_args


def amtool_path() -> str | None:
    return shutil.which("amtool")


def routes_test(config_file: str, labels: dict[str, str], amtool: str = "amtool") -> str:
    """Receivers as amtool prints them (comma-separated); stderr holds a harmless warning."""
    proc = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config_file}", *label_args(labels)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"amtool failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def routes_test_many(
    jobs: Iterable[tuple[str, dict[str, str]]], workers: int = 2, amtool: str = "amtool"
) -> list[str]:
    """One amtool process per label set, `workers` at a time, results in input order."""
    items: Sequence[tuple[str, dict[str, str]]] = list(jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda j: routes_test(j[0], j[1], amtool), items))
