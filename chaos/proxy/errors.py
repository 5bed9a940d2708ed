"""The API's errors, with the status codes and messages Toxiproxy 2.x answers
(`{"error": message, "status": code}`)."""


class ApiError(Exception):
    """Anything a request can fail with; untyped failures (e.g. a port in use) are 500."""

    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict:
        return {"error": self.message, "status": self.status}


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


def bad_body(detail: str) -> BadRequest:
    return BadRequest(f"bad request body: {detail}")


def missing_field(field: str) -> BadRequest:
    return BadRequest(f"missing required field: {field}")


INVALID_STREAM = "stream was invalid, can be either upstream or downstream"
