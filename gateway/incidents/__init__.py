"""Incidents: opened by a responder or a trigger, contained by severity, kept across restarts."""
