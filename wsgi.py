"""The production entry point (`make run` serves it with gunicorn, see gunicorn.conf.py): settings
from the environment and `.env`, the app, and its job queue started at once, so jobs left by a
crashed process run again without waiting for a request.

For development: `flask --app wsgi run`.
"""

from dotenv import load_dotenv

from app import create_app

load_dotenv()
app = create_app()
app.extensions["deepfake"].queue.start()
