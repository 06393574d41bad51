"""bronze -> silver: typing, de-duplication, identity keys, PII hashing."""
