"""The production entry point (`make run` serves it with gunicorn, see gunicorn.conf.py): settings
from the environment and `.env`, the app, and its job queue started at once, so jobs left by a
crashed process run again without waiting for a request.

For development: `flask --app wsgi run`.
"""

import threading

from dotenv import load_dotenv

from app import create_app

load_dotenv()
app = create_app()
app.extensions["deepfake"].queue.start()
# Load the models now, beside the first requests, so the first analysis does not wait for them.
threading.Thread(target=app.extensions["deepfake"].warm_up, name="warm-up", daemon=True).start()
