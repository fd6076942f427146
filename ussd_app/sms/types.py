"""An inbound SMS as every dialect parses it: the type lives in
:mod:`ussd_app.core.inbound` (gateways and sms both import it from there);
kept under this name for code written against it."""
from ussd_app.core.inbound import InboundSms

__all__ = ["InboundSms"]
