"""The entry point the Procfile serves: ``granian --interface rsgi ussd_app.rsgi:app``.

The Flask app behind :class:`ussd_app.web.rsgi.Buffered`: a request reaches
the app only once its body is in (``HTTP_BODY_TIMEOUT``), so no client,
however slow, holds one of the worker's threads. (``ussd_app.wsgi`` serves the
same app to a WSGI server.)
"""
from ussd_app import create_app
from ussd_app.core import logs
from ussd_app.web.rsgi import Buffered

logs.configure()
flask_app = create_app()
app = Buffered(flask_app, body_seconds=flask_app.config["USSD"].HTTP_BODY_TIMEOUT,
               max_body=flask_app.config["MAX_CONTENT_LENGTH"])
