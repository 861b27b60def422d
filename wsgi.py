"""The production entry point (`make run` serves it with gunicorn): the app, with its analysis
workers started at once, so jobs cut off by a restart run again without waiting for a request."""

from app import create_app

app = create_app()
app.extensions["deepfake"].runner.start()
