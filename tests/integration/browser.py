"""Launching Debian's Chromium for the browser tests (Playwright drives it; no downloads)."""
CHROMIUM = "/usr/bin/chromium"
# Headless Chromium on a machine with no network but loopback: no background traffic, no sandbox
# (tests run as root), a fresh profile per launch (the tests pass user_data_dir).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
