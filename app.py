"""Entry point: `python app.py`."""

from ixc_app import __version__

if __name__ == "__main__":
    print(f"ixc-studio {__version__}")
