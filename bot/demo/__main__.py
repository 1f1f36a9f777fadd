"""`python -m bot.demo`: run the demo WebUI alone (`sdcord demo-webui` is the usual way)."""

from .server import main

main()
