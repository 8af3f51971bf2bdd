"""Outbound HTTP: the shared session and reads bounded in bytes and time."""
