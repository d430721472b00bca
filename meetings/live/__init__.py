"""The live meeting: one session per open meeting, between the room socket, the room and its media."""
