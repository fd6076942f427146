"""Push a deliver_sm into Jasmin as if its carrier sent it (run by Jasmin's
own Python: it needs Jasmin and Twisted).

Jasmin's SMPP server hands the PDU to the bind of ``system_id`` (the loop
connector's user, ``carrier``): Jasmin's own SMPP client connector ``loop``
receives it as from a carrier, and routes it (an MO: to the ESME under
test through the MO router; a receipt: matched by the DLR lookup to the
ESME's message). Usage:

    inject.py <pb port> <system_id> mo <from> <to> <text>
    inject.py <pb port> <system_id> receipt <smsc message id> <from> <to> <stat>

Exits 0 when Jasmin took it, 1 otherwise (the reason on stderr)."""
import sys

from twisted.internet import defer, reactor

from jasmin.protocols.smpp.operations import SMPPOperationFactory
from jasmin.protocols.smpp.proxies import SMPPServerPBProxy
from smpp.pdu.operations import DeliverSM
from smpp.pdu.pdu_types import AddrNpi, AddrTon

result = {"ok": False}


@defer.inlineCallbacks
def main(argv):
    port, system_id, kind, *rest = argv
    try:
        if kind == "mo":
            source, dest, text = rest
            pdu = DeliverSM(source_addr=source, source_addr_ton=AddrTon.INTERNATIONAL,
                            source_addr_npi=AddrNpi.ISDN, destination_addr=dest,
                            dest_addr_ton=AddrTon.NATIONAL, dest_addr_npi=AddrNpi.ISDN,
                            short_message=text.encode())
        else:
            msgid, source, dest, stat = rest
            pdu = SMPPOperationFactory().getReceipt(
                dlr_pdu="deliver_sm", msgid=msgid, source_addr=source, destination_addr=dest,
                message_status=stat, err="000", sub_date="2024-01-01 12:00:00",
                source_addr_ton=AddrTon.ALPHANUMERIC, source_addr_npi=AddrNpi.UNKNOWN,
                dest_addr_ton=AddrTon.INTERNATIONAL, dest_addr_npi=AddrNpi.ISDN)
        proxy = SMPPServerPBProxy()
        yield proxy.connect("127.0.0.1", int(port), "smppsadmin", "smppspwd")
        result["ok"] = yield proxy.deliverer_send_request(system_id, pdu)
        if not result["ok"]:
            sys.stderr.write("Jasmin refused the deliver_sm (no bind of that system_id?)\n")
    except Exception as e:  # said on stderr, exit 1
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
    finally:
        reactor.stop()


if __name__ == "__main__":
    reactor.callWhenRunning(main, sys.argv[1:])
    reactor.run()
    sys.exit(0 if result["ok"] else 1)
