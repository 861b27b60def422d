"""What a training keeps after each epoch so that, stopped between epochs (killed, or its machine's
session over), it can go on from there instead of from the start (`training.train`'s ``resume``).

A folder holds it:
- ``state.json``: the recipe, the training stream's entropy, the epochs done, the history so far, the
  seconds spent, the best epoch so far and the epochs a run resumed after;
- ``epoch-N.weights.h5``: the trained model's weights and its optimiser's state (the step count that
  drives the learning-rate schedule, and the moments) after epoch N, the last epoch done;
- ``best-N.weights.h5`` and ``best-N.scores.npz``: the network's weights at the best epoch so far, N,
  and its val scores there (the calibration is fitted on them).
Files are named by their epoch and ``state.json`` is replaced last, atomically, so a training killed
while it writes leaves the state before intact; the files no state names are then removed.

This module imports nothing of the project.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

STATE_FILE = "state.json"


class UnfinishedTraining:
    """The unfinished training kept in ``folder`` (see the module's docstring)."""

    def __init__(self, folder: Path):
        self.folder = folder

    def state(self) -> dict | None:
        """The state kept, or None when no training is unfinished here."""
        path = self.folder / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def to_resume(self, config, entropy: list[int], resume: bool) -> dict | None:
        """The state to go on from (None: start afresh), after checking that a training of ``config``
        (a dataclass) whose stream has ``entropy`` may go on from it. Raises ValueError when ``resume``
        is asked and nothing is unfinished, when an unfinished training would be started over without
        ``resume`` (its epochs would be lost), or when the recipe or the starting model differ from the
        ones it was started with (the learning-rate schedule and the stream depend on them)."""
        state = self.state()
        where = self.folder.parent
        if state is None:
            if resume:
                raise ValueError(
                    f"{where} holds no unfinished training to resume (train keeps one in {self.folder} after each epoch)"
                )
            return None
        done = f"{state['epochs_done']} of {state['config']['epochs']} epochs done"
        if not resume:
            raise ValueError(
                f"{where} holds an unfinished training ({done}): go on with it with --resume and the options it was "
                f"started with, or delete {self.folder} to start again"
            )
        recipe = json.loads(json.dumps(dataclasses.asdict(config)))
        changed = sorted(
            name for name in recipe.keys() | state["config"].keys() if recipe.get(name) != state["config"].get(name)
        )
        if changed:
            differences = ", ".join(
                f"{name} {state['config'].get(name)!r}, not {recipe.get(name)!r}" for name in changed
            )
            raise ValueError(
                f"the unfinished training in {where} ({done}) was started with another recipe ({differences}); "
                "resume it with the options it was started with"
            )
        if state["stream_entropy"] != entropy:
            raise ValueError(
                f"{state['config']['init']} is not the model the unfinished training in {where} started from: it has "
                "changed since"
            )
        return state

    def weights(self, epoch: int) -> Path:
        """The trained model's weights and optimiser state after ``epoch``."""
        return self.folder / f"epoch-{epoch}.weights.h5"

    def best_weights(self, epoch: int) -> Path:
        """The network's weights at ``epoch``, kept as the best so far."""
        return self.folder / f"best-{epoch}.weights.h5"

    def best_scores(self, epoch: int) -> dict[str, np.ndarray]:
        """The network's val scores at ``epoch``, kept as the best so far, by val set."""
        with np.load(self._best_scores_path(epoch)) as scores:
            return dict(scores)

    def _best_scores_path(self, epoch: int) -> Path:
        return self.folder / f"best-{epoch}.scores.npz"

    def keep_best(self, network, scores: dict[str, np.ndarray], epoch: int) -> None:
        """Keep ``network``'s weights and val ``scores`` as epoch ``epoch``'s, the best so far; a `save`
        naming that epoch best makes them the ones kept."""
        self.folder.mkdir(parents=True, exist_ok=True)
        network.save_weights(self.best_weights(epoch))
        np.savez(self._best_scores_path(epoch), **scores)

    def save(self, trainee, state: dict) -> None:
        """Keep ``trainee`` (the model `fit` steps, with its optimiser) after ``state['epochs_done']``
        epochs, then ``state``, then remove the files of the state before."""
        self.folder.mkdir(parents=True, exist_ok=True)
        trainee.save_weights(self.weights(state["epochs_done"]))
        partial = self.folder / f"{STATE_FILE}.partial"
        partial.write_text(json.dumps(state, indent=1))
        os.replace(partial, self.folder / STATE_FILE)
        best = state["best_epoch"]
        named = {STATE_FILE, self.weights(state["epochs_done"]).name, self.best_weights(best).name}
        named.add(self._best_scores_path(best).name)
        for path in self.folder.iterdir():
            if path.name not in named:
                path.unlink()

    def remove(self) -> None:
        """Remove the folder and what it holds (the training is finished)."""
        if self.folder.exists():
            for path in self.folder.iterdir():
                path.unlink()
            self.folder.rmdir()
