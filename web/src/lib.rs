//! The browser bundle of Web DiT (wasm + a page that shows the image denoising live). Not
//! built yet: `webdit-model` already compiles for `wasm32-unknown-unknown` (no blocking waits
//! on the web path); the page, the wasm-bindgen glue and browser tests are future work.
