"""abicheck: predict, before insmod, whether a kernel module will load, and why not."""

__version__ = "0.1.0"
