"""Sign-in, roles and API tokens for the fleet server's dashboard and API.

- ``roles``: the four roles and what each may see or do (one table, one place).
- ``models``: users and API tokens (tables on the server's declarative Base).
- ``passwords``: argon2id hashing (argon2-cffi), timing-safe for unknown users.
- ``tokens``: bearer tokens for scripts, shown once, stored as a SHA-256 hash.
- ``sessions``: signed, HttpOnly, SameSite=Lax session cookies and CSRF tokens.
- ``ratelimit``: failed sign-ins per user name and per client address.
- ``service``: creating users and tokens (shared by the CLI and tests).
- ``deps``: the FastAPI dependencies every route uses (re-exported by api/deps.py).
- ``routes``: the sign-in and sign-out pages.
"""
