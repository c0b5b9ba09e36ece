"""The dashboard: server-rendered pages (Jinja2), their static files and vendored chart library."""
