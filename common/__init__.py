"""Code shared by every pykron service, the API and pykronctl: the wire envelope,
config, the service loop, the ZeroMQ client, logging and the job model. Imports no service."""
