"""The media plane: signaling messages, ICE servers and the forwarding unit on aiortc."""
