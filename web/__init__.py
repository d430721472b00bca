"""The web layer: aiohttp app factory, middlewares, views, templates and static files."""
