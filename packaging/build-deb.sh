#!/usr/bin/env bash
# Builds the Debian package: autodial (dynamic, /usr/bin), callback and
# alert built static (/usr/share/asterisk/agi-bin: start-up is their whole
# cost), man pages and shell completions generated from the clap
# definitions, then `cargo deb --no-build`. Prints the .deb's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bin autodial
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --no-default-features \
    --target "$TRIPLE" --target-dir target/static --bin callback --bin alert
EXTRA=target/deb-extra
rm -rf "$EXTRA" && mkdir -p "$EXTRA/bin"
install -m 0755 "target/static/$TRIPLE/release/callback" "target/static/$TRIPLE/release/alert" "$EXTRA/bin/"
target/release/autodial generate-docs "$EXTRA"
gzip -9n "$EXTRA"/man/*
cargo deb --no-build --no-strip --output target/debian/ >&2
ls -t target/debian/*.deb | head -1
