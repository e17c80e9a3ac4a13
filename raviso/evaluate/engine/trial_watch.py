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
        def _key(trial):
            fold, variant = trial.config["job"]
            return int(fold), variant

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.done += 1
            fold, variant = self._key(trial)
            if self.say:
                self.say(f"trial {self.done}/{self.total}: fold {fold} {variant}: MSE "
                         f"{result.get('mse', float('nan')):.4f} in "
                         f"{result.get('seconds', 0):.1f} s")

        def on_trial_recover(self, iteration, trials, trial, **info):
            key = self._key(trial)
            self.recoveries[key] = self.recoveries.get(key, 0) + 1
            if self.say:
                self.say(f"trial fold {key[0]} {key[1]} crashed: retrying it")

        def on_trial_error(self, iteration, trials, trial, **info):
            if self.say:
                self.say(f"trial fold {self._key(trial)[0]} {self._key(trial)[1]} failed for good")

    return TrialWatch
