"""A phone behind a gateway, for tests: what ``conftest`` and the dialect tests share
(a module of its own: ``tests/browser`` has a conftest too, so ``from conftest import`` is ambiguous)."""
import json
import uuid

from ussd_app.gateways import DIALECTS

RESUME_OFFER = "Sesi Anda sebelumnya terputus.\n1 Lanjutkan\n2 Mulai dari awal"


def send(client, request) -> tuple[int, str, str]:
    """Post a gateway's request (a dialect's ``encode``): status, content type, body."""
    path, content_type, body = request
    if content_type == "application/x-www-form-urlencoded":
        resp = client.post(path, data=body)
    else:
        resp = client.post(path, data=body if isinstance(body, str) else json.dumps(body),
                           content_type=content_type)
    return resp.status_code, resp.content_type, resp.get_data(as_text=True)


class Phone:
    """A subscriber's phone behind a gateway (Africa's Talking unless told):
    dials, types, hangs up, reads screens and SMS."""

    def __init__(self, client, msisdn="081234567890", code="*700#", dialect="africastalking"):
        self.client, self.msisdn, self.code = client, msisdn, code
        self.dialect = DIALECTS[dialect]
        self.session = None
        self.inputs: list[str] = []
        self.last = None
        self.screen = ""
        self.end = False

    def dial(self, text: str = "", session: str | None = None) -> str:
        """Dial the code, with ``text`` (``1*2``) typed in advance (``*700*1*2#``)."""
        self.session = session or uuid.uuid4().hex
        self.inputs = text.split("*") if text else []
        return self._send(self.dialect.encode(self.session, self.msisdn, self.code, list(self.inputs),
                                              None, "dial"))

    def type(self, *inputs) -> str:
        for typed in inputs:
            request = self.dialect.encode(self.session, self.msisdn, self.code, list(self.inputs),
                                          str(typed), "input")
            self.inputs.append(str(typed))
            self._send(request)
        return self.screen

    def resend(self) -> str:
        """The gateway posts the last hop again."""
        return self._send(self.last)

    def hang_up(self, kind: str = "release") -> int | None:
        """The gateway says the session was released (or timed out); None where
        this gateway says nothing."""
        request = self.dialect.encode(self.session, self.msisdn, self.code, list(self.inputs), None, kind)
        if request is None:
            return None
        return send(self.client, request)[0]

    def _send(self, request) -> str:
        self.last = request
        status, content_type, body = send(self.client, request)
        assert status == 200, body
        assert content_type.split(";")[0] == self.dialect.CONTENT_TYPE.split(";")[0], content_type
        self.screen, self.end = self.dialect.decode(status, content_type, body)
        if self.dialect.NAME == "africastalking":
            assert body[:4] in ("CON ", "END "), body
        return self.screen

    def sms(self, text: str, message_id: str | None = None) -> None:
        resp = self.client.post("/sms/inbound", data={"from": self.msisdn, "to": "62168", "text": text,
                                                      "id": message_id or uuid.uuid4().hex})
        assert resp.status_code == 200

    def inbox(self) -> list[str]:
        data = self.client.get(f"/api/v1/outbox?to={self.msisdn}").get_json()
        return [m["text"] for m in data["messages"]]
