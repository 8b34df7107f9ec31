"""tf.keras.callbacks: the callbacks of deepbreadth.callbacks."""
from ..callbacks import (Callback, CSVLogger, EarlyStopping, History, LambdaCallback,  # noqa: F401
                         LearningRateScheduler, ModelCheckpoint, ProgressBar, ReduceLROnPlateau,
                         TerminateOnNaN)
