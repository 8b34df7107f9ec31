"""tf.keras.metrics: the metrics of deepbreadth.metrics."""
from ..metrics import *  # noqa: F401,F403
from ..metrics import Mean, Metric, deserialize, get, serialize  # noqa: F401
