"""Learning-rate schedules: the learning rate as a function of the step.

Reached as `deepbreadth.optimizers.schedules`, as in Keras. Give a schedule
to an optimizer in place of a number,

    lr = optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.5)
    optimizer = optimizers.SGD(learning_rate=lr)

and the optimizer evaluates it before every update at its step count
(`optimizer.iterations`, counted from 0). Large steps early and small steps
late let training move fast at first and settle at the end.
"""
import math


class LearningRateSchedule:
    """Base class: `schedule(step) -> float`, and `get_config()` to save it."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must define __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must define get_config()")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        options = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({options})"


def _check_positive_steps(decay_steps, schedule_name):
    if decay_steps <= 0:
        raise ValueError(f"{schedule_name}: decay_steps must be > 0, got {decay_steps}")


class _DecayBySteps(LearningRateSchedule):
    """What ExponentialDecay and InverseTimeDecay share: the rate is a function
    of step / decay_steps, rounded down with staircase=True, so that it drops
    in steps every `decay_steps` instead of smoothly."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name=None):
        _check_positive_steps(decay_steps, type(self).__name__)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name or type(self).__name__

    def _progress(self, step):
        progress = step / self.decay_steps
        return math.floor(progress) if self.staircase else progress

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_DecayBySteps):
    """initial_learning_rate * decay_rate ** (step / decay_steps).

    With staircase=True the exponent is rounded down, so the rate drops in
    steps every `decay_steps` instead of smoothly.
    """

    def __call__(self, step):
        return float(self.initial_learning_rate * self.decay_rate ** self._progress(step))


class InverseTimeDecay(_DecayBySteps):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps), floored if staircase."""

    def __call__(self, step):
        return float(self.initial_learning_rate / (1 + self.decay_rate * self._progress(step)))


class CosineDecay(LearningRateSchedule):
    """Half a cosine wave from the starting rate down to `alpha` times it, over decay_steps.

    Optional linear warmup first: with `warmup_target` and `warmup_steps` the
    rate climbs from initial_learning_rate to warmup_target over warmup_steps,
    and the cosine then decays from warmup_target. After the decay the rate
    stays at its final value.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        _check_positive_steps(decay_steps, "CosineDecay")
        if warmup_target is not None and warmup_steps <= 0:
            raise ValueError("CosineDecay: warmup_target needs warmup_steps > 0")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_target = warmup_target
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decayed(min(step, self.decay_steps), self.initial_learning_rate)
        if step < self.warmup_steps:
            climbed = step / self.warmup_steps
            return float(self.initial_learning_rate
                         + climbed * (self.warmup_target - self.initial_learning_rate))
        decay_step = min(step - self.warmup_steps, self.decay_steps)
        return self._decayed(decay_step, self.warmup_target)

    def _decayed(self, step, start_rate):
        cosine = 0.5 * (1 + math.cos(math.pi * step / self.decay_steps))  # from 1 down to 0
        return float(start_rate * ((1 - self.alpha) * cosine + self.alpha))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate between boundaries: values[0] while step <= boundaries[0],
    values[1] while step <= boundaries[1], ..., values[-1] after the last boundary.
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"PiecewiseConstantDecay needs one more value than boundaries, got "
                f"{len(boundaries)} boundaries and {len(values)} values"
            )
        if any(later <= earlier for earlier, later in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase, got {boundaries}")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From initial_learning_rate to end_learning_rate along (1 - step/decay_steps) ** power.

    Without `cycle` the rate stays at end_learning_rate after decay_steps; with
    `cycle` the decay restarts over a span stretched to the next multiple of
    decay_steps.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        _check_positive_steps(decay_steps, "PolynomialDecay")
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name

    def __call__(self, step):
        span = self.decay_steps
        if self.cycle:
            span = self.decay_steps * max(1, math.ceil(step / self.decay_steps))
        else:
            step = min(step, self.decay_steps)
        remaining = (1 - step / span) ** self.power
        return float((self.initial_learning_rate - self.end_learning_rate) * remaining
                     + self.end_learning_rate)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


# ----------------------------------------------------------------------------
# Saving and loading
# ----------------------------------------------------------------------------
_SCHEDULES = {cls.__name__: cls for cls in (
    ExponentialDecay, InverseTimeDecay, CosineDecay, PiecewiseConstantDecay, PolynomialDecay)}


def serialize(schedule):
    """A dict {'class_name', 'config'} from which `deserialize` rebuilds the schedule."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config, custom_objects=None):
    """The schedule described by `serialize`'s dict; `custom_objects` maps the
    names of your own LearningRateSchedule subclasses to them."""
    classes = {**_SCHEDULES, **(custom_objects or {})}
    class_name = config["class_name"]
    if class_name not in classes:
        raise ValueError(
            f"unknown learning-rate schedule {class_name!r}; pass "
            f"custom_objects={{{class_name!r}: {class_name}}}"
        )
    return classes[class_name].from_config(config["config"])
