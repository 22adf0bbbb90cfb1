//! Checkpoints: safetensors in PyTorch's state_dict layout (F32, F16 or BF16), single files
//! or shards with a `model.safetensors.index.json`, with the configuration in
//! `__metadata__`. Everything is checked against the configuration before use, so a bad
//! file is an error naming the tensor and what was expected, never a panic.

use crate::config::{Config, ConfigError};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};

/// Metadata key holding the configuration JSON.
pub const CONFIG_KEY: &str = "webdit_config";
/// A buffer some exporters include; recomputed here, so ignored.
const IGNORED: &[&str] = &["pos_embed.pos_emb"];

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("`{file}` is not a valid safetensors file: {message}")]
    Format { file: String, message: String },
    #[error("`{file}`: bad shard index: {message}")]
    Index { file: String, message: String },
    #[error("missing tensor `{name}` (expected shape {shape:?})")]
    Missing { name: String, shape: Vec<usize> },
    #[error("unexpected tensor `{name}`: not part of a DiT with this configuration")]
    Extra { name: String },
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    Shape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("tensor `{name}` is {got}; weights must be F32, F16 or BF16")]
    Dtype { name: String, got: String },
    #[error("tensor `{name}` holds a NaN or infinite value")]
    NotFinite { name: String },
    #[error("the checkpoint has no `{CONFIG_KEY}` metadata and its shapes match no preset; name one with --preset")]
    NoConfig,
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A tensor converted to f32, with the dtype it was stored in.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub stored: Dtype,
}

/// A checked checkpoint: every tensor the configuration needs, with the right shape.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: Config,
    pub tensors: HashMap<String, Tensor>,
}

/// The files of a checkpoint, as bytes (read from disk, embedded, or fetched by a page).
pub struct Files<'a> {
    /// `(file name, contents)`; one file, or the shards named by `index`.
    pub files: Vec<(String, &'a [u8])>,
    /// The contents of `model.safetensors.index.json`, for sharded checkpoints.
    pub index: Option<&'a str>,
}

fn format_err(file: &str, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Format {
        file: file.to_string(),
        message: e.to_string(),
    }
}

fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, CheckpointError> {
    let v: Vec<f32> = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(CheckpointError::Dtype {
                name: name.into(),
                got: format!("{other:?}"),
            })
        }
    };
    if v.iter().any(|x| !x.is_finite()) {
        return Err(CheckpointError::NotFinite { name: name.into() });
    }
    Ok(v)
}

impl Checkpoint {
    /// Parses and checks a checkpoint. The configuration comes from the metadata, else from
    /// `preset`, else from the preset whose shapes the tensors match.
    pub fn from_files(
        files: Files<'_>,
        preset: Option<&Config>,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut raw: BTreeMap<String, (Vec<usize>, Dtype, &[u8])> = BTreeMap::new();
        let mut meta_config = None;
        let mut expected_in: Option<HashMap<String, String>> = None;
        if let Some(index) = files.index {
            let v: serde_json::Value =
                serde_json::from_str(index).map_err(|e| CheckpointError::Index {
                    file: "model.safetensors.index.json".into(),
                    message: e.to_string(),
                })?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| CheckpointError::Index {
                    file: "model.safetensors.index.json".into(),
                    message: "no `weight_map` object".into(),
                })?;
            let mut m = HashMap::new();
            for (k, f) in map {
                let f = f.as_str().ok_or_else(|| CheckpointError::Index {
                    file: "model.safetensors.index.json".into(),
                    message: format!("`{k}` maps to a non-string"),
                })?;
                m.insert(k.clone(), f.to_string());
            }
            if let Some(c) = v
                .pointer(&format!("/metadata/{CONFIG_KEY}"))
                .and_then(|c| c.as_str())
            {
                meta_config = Some(c.to_string());
            }
            expected_in = Some(m);
        }
        for (file, bytes) in &files.files {
            let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(file, e))?;
            let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(file, e))?;
            if let Some(c) = meta.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) {
                meta_config.get_or_insert_with(|| c.clone());
            }
            for (name, view) in st.tensors() {
                if let Some(map) = &expected_in {
                    if map.get(&name) != Some(file) {
                        return Err(CheckpointError::Index {
                            file: file.clone(),
                            message: format!(
                                "tensor `{name}` is in `{file}` but the index says {:?}",
                                map.get(&name)
                            ),
                        });
                    }
                }
                if raw
                    .insert(
                        name.clone(),
                        (view.shape().to_vec(), view.dtype(), view.data()),
                    )
                    .is_some()
                {
                    return Err(format_err(file, format!("tensor `{name}` appears twice")));
                }
            }
        }
        if let Some(map) = &expected_in {
            if let Some((name, file)) = map.iter().find(|(n, _)| !raw.contains_key(*n)) {
                return Err(CheckpointError::Index {
                    file: file.clone(),
                    message: format!(
                        "the index lists `{name}` in `{file}`, which does not hold it"
                    ),
                });
            }
        }
        let config = match (meta_config, preset) {
            (Some(json), _) => Config::from_json(&json)?,
            (None, Some(c)) => c.clone(),
            (None, None) => [Config::favicon_s(), Config::favicon_b()]
                .into_iter()
                .find(|c| {
                    c.expected_tensors()
                        .iter()
                        .all(|(n, s)| raw.get(n).map(|r| &r.0) == Some(s))
                })
                .ok_or(CheckpointError::NoConfig)?,
        };
        config.validate()?;
        let expected = config.expected_tensors();
        let mut tensors = HashMap::new();
        for (name, shape) in &expected {
            let Some((got, dtype, bytes)) = raw.remove(name) else {
                return Err(CheckpointError::Missing {
                    name: name.clone(),
                    shape: shape.clone(),
                });
            };
            if &got != shape {
                return Err(CheckpointError::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    got,
                });
            }
            let data = to_f32(name, dtype, bytes)?;
            tensors.insert(
                name.clone(),
                Tensor {
                    shape: got,
                    data,
                    stored: dtype,
                },
            );
        }
        if let Some(name) = raw.keys().find(|n| !IGNORED.contains(&n.as_str())) {
            return Err(CheckpointError::Extra { name: name.clone() });
        }
        Ok(Checkpoint { config, tensors })
    }

    /// Random weights for tests and benchmarks (not a model): each weight uniform in
    /// `±gain/√fan_in`, the bias in `±0.1`, from `uniform` (values in [-1, 1)).
    pub fn random(config: Config, gain: f32, mut uniform: impl FnMut() -> f32) -> Checkpoint {
        let tensors = config
            .expected_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let scale = if shape.len() == 1 {
                    0.1
                } else {
                    gain / (*shape.last().unwrap() as f32).sqrt()
                };
                let data = (0..shape.iter().product::<usize>())
                    .map(|_| uniform() * scale)
                    .collect();
                (
                    name,
                    Tensor {
                        shape,
                        data,
                        stored: Dtype::F32,
                    },
                )
            })
            .collect();
        Checkpoint { config, tensors }
    }

    /// The data of a tensor the configuration requires (present after a successful load).
    pub fn get(&self, name: &str) -> &[f32] {
        &self.tensors[name].data
    }

    /// Whether the weights were stored in reduced precision (F16/BF16).
    pub fn stored_half(&self) -> bool {
        self.tensors.values().any(|t| t.stored != Dtype::F32)
    }

    /// Serializes as one safetensors file (F32) with the configuration in the metadata.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, CheckpointError> {
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                let view = safetensors::tensor::TensorView::new(
                    Dtype::F32,
                    t.shape.clone(),
                    bytemuck::cast_slice(&t.data),
                )
                .expect("shape and data agree");
                (n.clone(), view)
            })
            .collect();
        let meta = HashMap::from([(CONFIG_KEY.to_string(), self.config.to_json())]);
        safetensors::serialize(views, Some(meta)).map_err(|e| format_err("output", e))
    }
}

/// Reads a checkpoint from disk: a `.safetensors` file, a `model.safetensors.index.json`, or
/// a folder holding either.
#[cfg(not(target_arch = "wasm32"))]
pub fn load(
    path: &std::path::Path,
    preset: Option<&Config>,
) -> Result<Checkpoint, CheckpointError> {
    let io = |p: &std::path::Path, e: std::io::Error| CheckpointError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    };
    let path = if path.is_dir() {
        let index = path.join("model.safetensors.index.json");
        if index.exists() {
            index
        } else {
            path.join("model.safetensors")
        }
    } else {
        path.to_path_buf()
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if name.ends_with(".index.json") {
        let index = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&index).map_err(|e| CheckpointError::Index {
                file: name.clone(),
                message: e.to_string(),
            })?;
        let mut shards: Vec<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .map(|m| {
                m.values()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let mut data = vec![];
        for s in &shards {
            if s.contains('/') || s.contains('\\') || s.contains("..") {
                return Err(CheckpointError::Index {
                    file: name,
                    message: format!("shard name `{s}` is not a plain file name"),
                });
            }
            let p = dir.join(s);
            data.push((s.clone(), std::fs::read(&p).map_err(|e| io(&p, e))?));
        }
        let files = Files {
            files: data
                .iter()
                .map(|(n, d)| (n.clone(), d.as_slice()))
                .collect(),
            index: Some(&index),
        };
        Checkpoint::from_files(files, preset)
    } else {
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        Checkpoint::from_files(
            Files {
                files: vec![(name, &bytes)],
                index: None,
            },
            preset,
        )
    }
}
