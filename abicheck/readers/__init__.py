"""Raw formats: bytes in, plain data out. No policy, no severities."""
