"""TensorFlow, imported once without its start-up noise.

On a machine without a GPU, TensorFlow prints lines such as "Could not find cuda drivers" and
"failed call to cuInit: ... UNKNOWN ERROR (303)" on every start, before its own log settings apply
(TF_CPP_MIN_LOG_LEVEL does not reach them; tensorflow/tensorflow#100442). They alarm people and say
nothing wrong, so the import and the device discovery run with the process's stderr pointed at
/dev/null; later messages (real errors included) are shown as usual. That mutes the whole process's
stderr for those few seconds, Python's logging included, so the entry points load TensorFlow before
they run jobs (wsgi.py, tasks.py). Imports nothing of the project.
"""

from __future__ import annotations

import os
import sys
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_lock = threading.Lock()


def load():
    """The tensorflow module, imported (once) quietly."""
    with _lock:
        if "tensorflow" in sys.modules:
            return sys.modules["tensorflow"]
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                import tensorflow

                tensorflow.config.list_physical_devices()  # where the CUDA probe happens
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return tensorflow
