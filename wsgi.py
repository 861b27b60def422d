"""The production entry point (`make run` serves it with gunicorn, see gunicorn.conf.py): settings
from the environment and `.env`, the app, its models warmed up and its job queue started at once
(jobs left by a crashed process run again without waiting for a request).

For development: `flask --app wsgi run`.
"""

import threading

from dotenv import load_dotenv

from app import create_app

load_dotenv()
app = create_app()


def _warm_up_then_start_the_queue() -> None:
    """Load the models now, beside the first requests, so the first analysis does not wait for them;
    then start the job queue (jobs submitted meanwhile wait queued). Not the other way round: while
    TensorFlow loads, stderr is muted (tf_runtime.py), and a job's log lines would be lost."""
    services = app.extensions["deepfake"]
    try:
        services.warm_up()
    finally:
        services.queue.start()


threading.Thread(target=_warm_up_then_start_the_queue, name="warm-up", daemon=True).start()
