"""Series, occurrences, working days, calendar invitations and their mail."""
