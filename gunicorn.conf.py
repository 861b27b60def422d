"""gunicorn settings for `make run`: one process whose threads answer pages while the job queue's
workers analyse videos beside them."""

bind = "127.0.0.1:5000"
workers = 1
threads = 8
timeout = 300


def worker_exit(server, worker):
    """SIGTERM: stop promptly; the running analysis is handed back to the queue at its next batch."""
    from wsgi import app

    app.extensions["deepfake"].queue.stop(timeout=10)
