"""Typed errors that cross service boundaries: each carries one of the wire's error codes,
so a reply, an HTTP status and a CLI exit code can all be derived from it."""

CODES = ("bad_request", "not_found", "conflict", "not_leader", "timeout", "unavailable", "insufficient_storage",
         "internal", "unauthenticated", "forbidden")


class Error(Exception):
    """An error with a wire code; `leader` names the leader when the code is not_leader."""

    code = "internal"

    def __init__(self, message="", *, leader=""):
        super().__init__(message)
        self.message = message
        self.leader = leader

    def __str__(self):
        return self.message or self.code

    @staticmethod
    def from_code(code, message="", leader=""):
        cls = _BY_CODE.get(code, Error)
        err = cls(message, leader=leader)
        if cls is Error:
            err.code = code
        return err


class BadRequest(Error):
    code = "bad_request"


class NotFound(Error):
    code = "not_found"


class Conflict(Error):
    code = "conflict"


class NotLeader(Error):
    """This server cannot take the request: `leader` names one that can, "" while none is known."""

    code = "not_leader"


class Timeout(Error):
    code = "timeout"


class Unavailable(Error):
    """No server answered in time, or the one that did cannot serve the request now."""

    code = "unavailable"


class InsufficientStorage(Unavailable):
    """The server's disk is (nearly) full: writes are refused until space returns; reads go on."""

    code = "insufficient_storage"


class Unauthenticated(Error):
    """No token where the ACL needs one, or one that is unknown, deleted or expired (HTTP 401)."""

    code = "unauthenticated"


class Forbidden(Error):
    """A valid token whose policies do not allow the request (HTTP 403)."""

    code = "forbidden"


class Halt(Exception):
    """What a service must not run on: a store written by a newer pykron, a committed entry of a
    protocol it does not speak, a damaged file. Its message names the file or entry and what to
    do; the service stops with that one line and exit 65 (common/loop.py EXIT_HALT), which
    supervisord does not restart."""


class ConfigError(Exception):
    """A config file or environment value is wrong; the message names file, section and key."""


_BY_CODE = {c.code: c for c in (BadRequest, NotFound, Conflict, NotLeader, Timeout, Unavailable, InsufficientStorage,
                                 Unauthenticated, Forbidden)}
