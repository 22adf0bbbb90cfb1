#!/usr/bin/env bash
# Builds the deployable static bundle into web/dist/: the wasm module (code only) with its
# wasm-bindgen glue and TypeScript declarations (pkg/; pkg-relaxed/ the same built with
# relaxed SIMD), the page, and the shipped weights as
# their f16 safetensors shards with a manifest of sizes and SHA-256s (weights/<model>/) that
# the page checks what it downloads against. Needs `rustup target add
# wasm32-unknown-unknown` and the wasm-bindgen CLI of the same version as the crate (see
# README "Deploying").
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# The bundle is built whole, not incrementally (the workspace turns incremental release
# builds on for the kernel edit loop).
export CARGO_INCREMENTAL=0
cargo build --release --target wasm32-unknown-unknown -p webdit-web
# A second build for browsers with relaxed SIMD (fused multiply-add in the CPU path); the
# page picks it where `WebAssembly.validate` accepts a relaxed-SIMD instruction.
RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build --release --target wasm32-unknown-unknown -p webdit-web --target-dir "$target/relaxed"
rm -rf web/dist
wasm-bindgen --target web --out-dir web/dist/pkg \
  "$target/wasm32-unknown-unknown/release/webdit_web.wasm"
wasm-bindgen --target web --out-dir web/dist/pkg-relaxed \
  "$target/relaxed/wasm32-unknown-unknown/release/webdit_web.wasm"
cp web/static/* web/dist/
model=favicon-s-emoji
mkdir -p "web/dist/weights/$model"
cp model/weights/$model/*.safetensors model/weights/$model/*.json model/weights/$model/ATTRIBUTION.md \
  "web/dist/weights/$model/"
(
  cd "web/dist/weights/$model"
  first=1
  echo "{"
  for f in *.safetensors model.safetensors.index.json; do
    [ $first = 1 ] || echo ","
    first=0
    printf '  "%s": {"size": %d, "sha256": "%s"}' "$f" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
  done
  echo
  echo "}"
) > "web/dist/weights/$model/manifest.json.tmp"
mv "web/dist/weights/$model/manifest.json.tmp" "web/dist/weights/$model/manifest.json"
echo "web/dist: $(du -sh web/dist | cut -f1) ($(du -sh web/dist/pkg/*.wasm | cut -f1) of wasm, twice); serve it with any static file server"
