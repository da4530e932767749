"""The api service (servers): Dkron's /v1 REST API on Falcon under gunicorn, a face of the
one ZeroMQ client library in common/client.py; it never touches SQLite itself."""
