"""The Tune callback of `raviso cv`: counts retries of each (fold, variant) and says one line per
finished or crashed trial."""

from __future__ import annotations


def watch_callback_class():
    from ray import tune

    class TrialWatch(tune.Callback):
        """Counts Tune's retries of each (fold, variant) (its own record of a crashed trial being
        restarted) and says one line per finished or crashed trial when given `say`."""

        def __init__(self, say, total):
            self.say, self.total, self.done = say, total, 0
            self.recoveries: dict[tuple, int] = {}

        def __getstate__(self):
            # Tune pickles its callbacks into the experiment state; `say` may hold a console
            return {**self.__dict__, "say": None}

        @staticmethod
        def _keys(trial):
            """(fold, variant) of each member of the trial's job (`engine.jobs`)."""
            from .jobs import members

            return [(int(trial.config["job"][0]), v) for v in members(trial.config["job"])]

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "batch_mse" not in result:             # one (fold, variant), as a list of one
                result = {"batch_mse": [result.get("mse", float("nan"))], "batch_attempts": [1],
                          "batch_seconds": [result.get("seconds", 0)], "batch_failed": [0]}
            for (fold, variant), mse, s, attempts, failed in zip(
                    self._keys(trial), result["batch_mse"], result["batch_seconds"],
                    result["batch_attempts"], result["batch_failed"]):
                self.done += 1
                if not self.say:
                    continue
                if attempts > 1:
                    self.say(f"trial fold {fold} {variant} crashed: retrying it")
                self.say(f"trial {self.done}/{self.total}: fold {fold} {variant}: "
                         + ("failed for good" if failed else f"MSE {mse:.4f} in {s:.1f} s"))

        def on_trial_recover(self, iteration, trials, trial, **info):
            for key in self._keys(trial):
                self.recoveries[key] = self.recoveries.get(key, 0) + 1
                if self.say:
                    self.say(f"trial fold {key[0]} {key[1]} crashed: retrying it")

        def on_trial_error(self, iteration, trials, trial, **info):
            for fold, variant in self._keys(trial):
                if self.say:
                    self.say(f"trial fold {fold} {variant} failed for good")

    return TrialWatch
