"""Directory: units (committee, departments, support, telecom, centres) and people."""
