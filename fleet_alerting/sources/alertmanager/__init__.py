"""Page critical Alertmanager alerts that persist past the window; resolve when they clear"""

from fleet_alerting.sources.watch import SourceWatch

WATCH = SourceWatch(
    __name__,
    __doc__,
    "alertmanager-escalation",
    "alertmanager",
    lambda c: c.alertmanager is not None,
    required="alertmanager: section missing (url, rules)",
)
