"""Held calls: the pending store and its values."""
