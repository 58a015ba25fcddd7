"""Calls held for human review: the pending items, their votes, and where they are kept."""
