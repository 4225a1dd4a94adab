"""Route modules beside `app.py`, so that it does not grow without bound.

Each module has `register(route)`: it declares its views with the app's `Router.route`
(`chalicelib/routing.py`) exactly as `app.py` does, and `app.py` calls it once at import
(the section "route modules" at its end). Chalice sees one app, one set of routes; the
OpenAPI document, auth, validation and error mapping are the same as for any other view.
View function names must be unique across the app (Chalice names handlers by them).
"""
