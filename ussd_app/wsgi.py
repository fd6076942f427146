"""The WSGI entry point the Procfile serves: ``ussd_app.wsgi:app``."""
import logging
import os

from . import create_app

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
app = create_app()
