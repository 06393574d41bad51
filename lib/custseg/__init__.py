"""custseg: customer segmentation and precision marketing on PySpark and Delta Lake."""

__version__ = "0.1.0"
