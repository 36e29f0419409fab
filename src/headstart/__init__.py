"""headstart: giving transformers a head start — the shared torch core of the workflow."""
__version__ = "0.1.0"
