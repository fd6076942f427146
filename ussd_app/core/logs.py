"""Logging for every process: one JSON object per line, carrying the request id
of the request (or job) it belongs to, and no full MSISDN or NIK in any line,
whoever wrote it (our hop log masks its own; a server's access log, a
traceback or a library's message would not)."""
from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import time
from contextvars import ContextVar

from ussd_app.core import msisdn

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being handled (and of the jobs it enqueued)."""
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
"""The id of the job being run, if any."""

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ids = itertools.count(1)
_process = secrets.token_hex(4)  # request ids of different processes never meet


def new_request_id(given: str | None = None) -> str:
    """``given`` (a caller's X-Request-Id) when it is a plain token (at most 128
    of ``A-Za-z0-9._:-``) holding no NIK or mobile number (it is kept in job
    meta and logs as sent), else a new id: cheap (no random per request),
    unique per process run."""
    if given and _REQUEST_ID.fullmatch(given) and redact(given) == given:
        return given
    return f"{_process}-{next(_ids):x}"

# An Indonesian mobile number as it appears in text or a URL (+62 8.., %2B62 8..,
# 62 8.., 08..), and a NIK (16 digits): neither inside a longer run of digits.
_MSISDN = re.compile(r"(?<![\d*])(?:\+|%2B)?(?:62|0)8\d{7,12}(?!\d)")
_NIK = re.compile(r"(?<![\d*])\d{16}(?!\d)")
# A terminal's colour codes (werkzeug colours its request lines): no place in JSON.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def redact(text: str) -> str:
    """``text`` with every NIK and mobile number in it masked."""
    text = _NIK.sub(lambda m: "*" * 12 + m.group()[-4:], text)  # 3171014506900001 -> ************0001
    return _MSISDN.sub(lambda m: msisdn.mask(m.group()), text)


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks numbers: the message, its arguments and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(RedactingFormatter):
    """One JSON object per line: time, level, logger, the request and job ids,
    and the message. A message that is a JSON object already (the hop log's)
    is spliced in as its fields; any other goes in ``msg``. Then redacted."""

    def format(self, record: logging.LogRecord) -> str:
        head = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z", "level": record.levelname, "logger": record.name}
        if (rid := request_id.get()) is not None:
            head["request_id"] = rid
        if (jid := job_id.get()) is not None:
            head["job_id"] = jid
        if record.exc_info:
            head["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            head["stack"] = self.formatStack(record.stack_info)
        message = _ANSI.sub("", record.getMessage())
        if message.startswith('{"') and message.endswith("}"):
            line = json.dumps(head)[:-1] + ", " + message[1:]
        else:
            line = json.dumps({**head, "msg": message})
        return redact(line)


def configure() -> None:
    """The root logger at ``LOG_LEVEL`` (default INFO), each line one redacted
    JSON object (nothing changes where logging was configured already)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), handlers=[handler])
