"""The master's HTTP server (aiohttp, in the master's loop): API, dashboard, webhooks, metrics.

- ``server``: the server, its sites and limits, the answers' security headers
- ``auth``: tokens, dashboard logins, roles, CSRF
- ``routes``: the routes of ``/api/v1``, one row each, and the OpenAPI document of them
- ``api``: serves those routes over the control operations
- ``live``: ``/api/v1/live``, events as Server-Sent Events
- ``ui``: ``/ui/``, the dashboard's pages (``static/``)
- ``hooks``: ``/hooks/<name>``, webhooks in
- ``scrape``: ``/metrics``
- ``app``: the server a master.yaml describes

Importing this package imports none of them (nor aiohttp): a master without HTTP never does.
"""
