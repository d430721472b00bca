"""Outgoing mail: the outbox table, its SMTP sender, and the demo's mail catcher."""
