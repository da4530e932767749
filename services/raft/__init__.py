"""The raft service (servers only): consensus over the job store. A pure core (core.py), the
SQLite log (store.py), the peewee state machine (fsm.py) and the shell that owns the sockets."""
