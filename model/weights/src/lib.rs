//! The shipped default model, `favicon-s` trained on emoji (see
//! `favicon-s-emoji/ATTRIBUTION.md`): its safetensors shards and their index, as
//! `webdit_model::default_checkpoint` reads them.

/// `model.safetensors.index.json`.
pub const INDEX: &str = include_str!("../favicon-s-emoji/model.safetensors.index.json");

/// The shards: (file name, bytes).
pub const SHARDS: [(&str, &[u8]); 2] = [
    (
        "model-00001-of-00002.safetensors",
        include_bytes!("../favicon-s-emoji/model-00001-of-00002.safetensors"),
    ),
    (
        "model-00002-of-00002.safetensors",
        include_bytes!("../favicon-s-emoji/model-00002-of-00002.safetensors"),
    ),
];
