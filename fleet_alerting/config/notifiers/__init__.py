"""Each notifier's own config section (`notify.slack`, `notify.pagerduty`, `notify.oncall`): its
model, validation and the channels it configures. They live at the config level, below delivery,
because the config's schema holds them; each delivery notifier builds from its section."""
