from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    name="alertmanager-escalation",
    section="alertmanager",
    description=(
        "Page critical Alertmanager alerts that persist past the window; resolve when they clear"
    ),
    observer="fleet_alerting.sources.alertmanager.watch:observe",
    is_configured=lambda c: c.alertmanager is not None,
    required="alertmanager: section missing (url, rules)",
)
