"""Grafana OnCall Formatted Webhook integration: POST JSON to the integration URL (which embeds
its token) → 200; `state` alerting/ok groups and auto-resolves by `alert_uid`."""

from __future__ import annotations

from tests.fakes.http import FakeServer, Request, Response


class OnCallServer(FakeServer):
    def __init__(self, token: str = "oncall-integration-token"):
        super().__init__()
        self.token = token
        self.fail_next: list[Response] = []
        self.alerts: list[dict] = []
        self.open: set[str] = set()

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/integrations/v1/formatted_webhook/{self.token}/"

    def handle(self, request: Request) -> Response:
        if request.path != f"/integrations/v1/formatted_webhook/{self.token}/":
            return Response(404, {"detail": "Not found."})
        if self.fail_next:
            return self.fail_next.pop(0)
        try:
            alert = request.json()
        except ValueError:
            return Response(400, {"detail": "JSON parse error"})
        if alert.get("state") not in (None, "alerting", "ok"):
            return Response(400, {"detail": "state must be alerting or ok"})
        self.alerts.append(alert)
        uid = alert.get("alert_uid")
        if alert.get("state") == "ok":
            self.open.discard(uid)
        else:
            self.open.add(uid)
        return Response(200, "Ok.")
