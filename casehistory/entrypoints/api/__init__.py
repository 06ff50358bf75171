"""The read API: identity and access, report routes, export formats, the server."""
