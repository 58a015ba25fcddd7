"""Gatehouse's pure logic: policy, egress, audit, state. Never imports mitmproxy."""
