"""Each notifier's own config section (`notify.slack`, `notify.pagerduty`, `notify.oncall`): its
model, its validation and the channels it configures, one module per notifier. They sit at the
config level, below delivery, because the config's schema holds them; delivery builds each
notifier (and its claim's lease) from its section."""
