"""The studio: the web app where supervisors review and decide and marketers follow their content.

Server-rendered (Jinja2) with htmx for partial updates, every asset vendored under `static/`, served by the API
process under `/studio/` (same origin as the API). It reads through the same services as the API and sends
decisions the same way (api/services/decisions.py), so a decision in the browser and one through the API are the
same thing. Sessions and CSRF are in `sessions.py`, pages in `pages.py`.
"""
