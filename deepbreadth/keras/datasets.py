"""tf.keras.datasets: mnist and fashion_mnist, each with load_data()."""
from ..datasets import fashion_mnist, mnist  # noqa: F401
