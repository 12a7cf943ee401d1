"""The console port over HTTP (aiohttp): metrics and health, no message traffic."""
