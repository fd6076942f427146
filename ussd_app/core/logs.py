"""Logging for every process: one line per record, and no full MSISDN or NIK
in any line, whoever wrote it (our hop log masks its own; a server's access
log, a traceback or a library's message would not)."""
from __future__ import annotations

import logging
import os
import re

from ussd_app.core import msisdn

# An Indonesian mobile number as it appears in text or a URL (+62 8.., %2B62 8..,
# 62 8.., 08..), and a NIK (16 digits): neither inside a longer run of digits.
_MSISDN = re.compile(r"(?<![\d*])(?:\+|%2B)?(?:62|0)8\d{7,12}(?!\d)")
_NIK = re.compile(r"(?<![\d*])\d{16}(?!\d)")


def redact(text: str) -> str:
    """``text`` with every NIK and mobile number in it masked."""
    text = _NIK.sub(lambda m: "*" * 12 + m.group()[-4:], text)  # 3171014506900001 -> ************0001
    return _MSISDN.sub(lambda m: msisdn.mask(m.group()), text)


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks numbers: the message, its arguments and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure() -> None:
    """The root logger at ``LOG_LEVEL`` (default INFO), each line redacted
    (nothing changes where logging was configured already)."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(message)s"))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), handlers=[handler])
