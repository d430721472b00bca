"""Accounts: passwords, login sessions, roles and permissions."""
