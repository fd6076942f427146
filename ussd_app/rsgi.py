"""The entry point the Procfile serves: ``granian --interface rsgi ussd_app.rsgi:app``.

The Flask app of ``ussd_app.wsgi``, behind :class:`ussd_app.web.rsgi.Buffered`:
a request reaches the app only once its body is in (``HTTP_BODY_TIMEOUT``),
so no client, however slow, holds one of the worker's threads.
"""
from ussd_app.web.rsgi import Buffered
from ussd_app.wsgi import app as flask_app

app = Buffered(flask_app, body_seconds=flask_app.config["USSD"].HTTP_BODY_TIMEOUT,
               max_body=flask_app.config["MAX_CONTENT_LENGTH"])
