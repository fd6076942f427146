"""The WSGI entry point the Procfile serves: ``ussd_app.wsgi:app``."""
from . import create_app, logs

logs.configure()
app = create_app()
