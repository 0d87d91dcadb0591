"""IXC-2.5 studio: a web application for InternLM-XComposer-2.5."""

__version__ = "0.1.0"
