"""Thin mitmproxy adapters, one concern each; `pipeline()` lists them in data-path order."""
