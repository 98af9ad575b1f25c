"""Wiring: settings, the aiohttp web app, the CLI and the components they assemble."""
