"""The HTTP API: routes, authentication, errors as problem details, limits, observability and
the OpenAPI document. ``reunite.app`` composes it with the staff pages into the application;
nothing here imports ``reunite.web`` or ``reunite.app``.
"""
