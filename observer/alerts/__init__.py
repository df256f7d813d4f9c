"""Alerts: what became of each one, the alerting settings, and the rules that raise them."""
