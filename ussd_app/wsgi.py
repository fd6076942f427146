"""The WSGI entry point the Procfile serves: ``ussd_app.wsgi:app``."""
from ussd_app import create_app
from ussd_app.core import logs

logs.configure()
app = create_app()
