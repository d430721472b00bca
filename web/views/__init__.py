"""Request handlers, one module per area; each route declares its permission."""
