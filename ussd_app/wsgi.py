"""The WSGI entry point, for a WSGI server (the Procfile serves ``ussd_app.rsgi``)."""
from ussd_app import create_app
from ussd_app.core import logs

logs.configure()
app = create_app()
