"""Gateway dialects: each module turns its gateway's requests into the
neutral hop (:class:`ussd_app.ussd.types.Hop`) and our replies, errors
included, into its own wire format; it also speaks the gateway's side
(``encode``/``decode``) for the simulator and tests.

A dialect module has: ``NAME``, ``PATH`` (its route), ``FORMAT`` (``form``,
``json`` or ``xml``: how the route reads the body), ``CONTENT_TYPE``,
``read(body) -> fields`` (json and xml), ``parse(fields) -> Hop``,
``render(reply, fields) -> str``, ``error(message, fields) -> str`` and the
gateway's side ``encode(...)``, ``decode(...)``. Adding one is a new module
and one line here: its route is made from this registry.
"""
from ussd_app.gateways import africastalking, arkesel, hubtel, nalo, truroute

DIALECTS = {d.NAME: d for d in (africastalking, hubtel, nalo, arkesel, truroute)}
