"""How the flows are served: every deployment with its schedule (deployments/schedules.py)."""
