"""Responses held for review: their evidence, the reviewers' decisions, the delivery on retry."""
