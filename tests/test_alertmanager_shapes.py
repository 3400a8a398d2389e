"""Done when: Alertmanager's alerts are read without pydantic when plainly of the documented
shape — and read exactly as the pydantic models read them, or left to the models (which name
what is wrong). Table: tests/cases/alertmanager_shapes.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet_alerting.sources.alertmanager.shapes import (
    GettableAlert,
    parse_alerts,
    read_documented,
    to_alert,
)

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "alertmanager_shapes.yaml").read_text())
BASE: dict[str, Any] = {
    "fingerprint": "a1b2c3d4e5f60718",
    "labels": {"alertname": "HostDown", "instance": "pi-0042:9100", "severity": "critical"},
    "annotations": {"summary": "pi-0042 is down", "runbook_url": "https://runbooks/host-down"},
    "startsAt": "2026-12-01T10:00:00.000Z",
    "endsAt": "2026-12-01T10:05:00.000Z",
    "updatedAt": "2026-12-01T10:01:00.000Z",
    "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
    "receivers": [{"name": "pagerduty"}],
    "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
}


def merged(over: dict[str, Any], onto: dict[str, Any]) -> dict[str, Any]:
    """`over` onto `onto`: a null removes the key; the YAML string `~null` is a JSON null."""
    out = copy.deepcopy(onto)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = None if value == "~null" else value
    return out


def raw_alert(case: dict[str, Any]) -> object:
    if "whole" in case:
        return case["whole"]
    alert = merged(case.get("alert", {}), BASE)
    if "status" in case:
        alert["status"] = merged(case["status"], {})
    return alert


def as_the_models_read(raw: object) -> tuple[list[Any], list[str]]:
    """The pydantic reading alone: the alert, or the identity of the malformed one."""
    try:
        fields = {
            k: None
            if k in ("endsAt", "updatedAt") and (v == "" or str(v).startswith("0001"))
            else v
            for k, v in raw.items()  # type: ignore[union-attr]
        }
        return [to_alert(GettableAlert.model_validate(fields))], []
    except Exception:
        return [], ["malformed"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_an_alert_is_read_as_the_models_read_it(case: dict[str, Any]) -> None:
    raw = raw_alert(case)
    alerts, malformed = parse_alerts([raw])
    expected_alerts, expected_malformed = as_the_models_read(raw)
    assert alerts == expected_alerts
    assert ["malformed"] * len(malformed) == expected_malformed
    try:
        read_documented(raw)
        by_hand = True
    except Exception:
        by_hand = False
    assert by_hand == case["hand"]


def test_a_malformed_alert_is_still_named_and_explained() -> None:
    bad = merged({"labels": {"alertname": "HostDown", "instance": 42}}, BASE)
    alerts, malformed = parse_alerts([BASE, bad])
    assert [a.fingerprint for a in alerts] == ["a1b2c3d4e5f60718"]
    assert malformed[0].identity == "fingerprint a1b2c3d4e5f60718"
    assert "labels.instance" in malformed[0].why


def test_one_answer_of_every_case_reads_each_alert_as_it_reads_alone() -> None:
    """The times read once per answer: an odd time, read after a good one in the same answer
    (or the other way round), is still the models' to judge, and a good one still read."""
    raws = [raw_alert(case) for case in CASES]
    raws += [*reversed(raws)]
    alerts, malformed = parse_alerts(raws)
    alone = [parse_alerts([raw]) for raw in raws]
    assert alerts == [a for found, _ in alone for a in found]
    assert [m.why for m in malformed] == [m.why for _, bad in alone for m in bad]
