"""Detection of personal data in bodies: Presidio behind an offline, explicit configuration."""
