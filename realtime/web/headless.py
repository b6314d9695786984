"""Debian's Chromium as a caller of the page with fake devices: what the browser tests and the WebRTC benchmark
launch (one recipe, DESIGN.md's). Playwright gives each launch a fresh profile directory."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)


def launch_chromium(playwright, *extra: str):
    """A headless Chromium whose camera and microphone are fakes (`extra`: e.g. the files they play)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_FLAGS, *extra])
