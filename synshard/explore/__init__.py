"""`synshard serve`: the read-only web explorer of a release. `server` (Flask routes, on waitress),
`data` (what each page shows, as JSON-ready dicts), `pages` (the Jinja templates).
"""
