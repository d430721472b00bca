"""Meeting rooms: admission, lobby, moderation, chat and attendance (no WebRTC here)."""
