#!/usr/bin/env bash
# Builds the deployable static bundle into web/dist/: the wasm module with its wasm-bindgen
# glue (pkg/) and the page. Needs `rustup target add wasm32-unknown-unknown` and the
# wasm-bindgen CLI of the same version as the crate (see README "Deploying").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --target wasm32-unknown-unknown -p webdit-web
rm -rf web/dist
wasm-bindgen --target web --no-typescript --out-dir web/dist/pkg \
  "${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/webdit_web.wasm"
cp web/static/* web/dist/
echo "web/dist: $(du -sh web/dist | cut -f1); serve it with any static file server"
