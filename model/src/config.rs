//! Model configuration: the columns of the reference table plus the sampling schedule, read
//! from a checkpoint's `__metadata__` (key `webdit_config`) or taken from a preset.

use serde::{Deserialize, Serialize};

/// A DiT's shape and schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Image side in pixels (square images).
    pub input: usize,
    pub patch: usize,
    pub channels: usize,
    pub dim: usize,
    pub depth: usize,
    pub dim_head: usize,
    #[serde(default = "one")]
    pub heads: usize,
    pub mlp_mult: usize,
    pub time_emb_dim: usize,
    /// T, the number of diffusion steps the model was trained with.
    #[serde(default = "thirty_two")]
    pub steps: usize,
    /// The cosine schedule's offset s.
    #[serde(default = "default_s")]
    pub schedule_s: f64,
}

fn one() -> usize {
    1
}
fn thirty_two() -> usize {
    32
}
fn default_s() -> f64 {
    1e-4
}

/// A configuration that cannot describe a working model.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid model configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The original's deployed favicon model.
    pub fn favicon_s() -> Config {
        Config {
            input: 64,
            patch: 8,
            channels: 3,
            dim: 512,
            depth: 4,
            dim_head: 128,
            heads: 1,
            mlp_mult: 4,
            time_emb_dim: 128,
            steps: 32,
            schedule_s: 1e-4,
        }
    }

    /// The original README's headline architecture.
    pub fn favicon_b() -> Config {
        Config {
            patch: 4,
            dim: 768,
            depth: 12,
            dim_head: 192,
            time_emb_dim: 768,
            ..Config::favicon_s()
        }
    }

    /// A preset by name (`favicon-s`, `favicon-b`).
    pub fn preset(name: &str) -> Option<Config> {
        match name {
            "favicon-s" => Some(Config::favicon_s()),
            "favicon-b" => Some(Config::favicon_b()),
            _ => None,
        }
    }

    /// Parses the JSON stored in a checkpoint's metadata (unknown keys are ignored).
    pub fn from_json(json: &str) -> Result<Config, ConfigError> {
        let c: Config = serde_json::from_str(json)
            .map_err(|e| ConfigError(format!("metadata `webdit_config`: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a config always serializes")
    }

    /// Checks the relations the model relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fail = |m: String| Err(ConfigError(m));
        if self.patch == 0 || self.input == 0 || !self.input.is_multiple_of(self.patch) {
            return fail(format!(
                "input {} is not a multiple of patch {}",
                self.input, self.patch
            ));
        }
        if !self.dim.is_multiple_of(4) || self.dim < 8 {
            return fail(format!(
                "dim {} must be a multiple of 4 and at least 8 (two sinusoidal halves)",
                self.dim
            ));
        }
        if self.channels == 0
            || self.depth == 0
            || self.heads == 0
            || self.dim_head == 0
            || self.mlp_mult == 0
        {
            return fail("channels, depth, heads, dim_head and mlp_mult must be positive".into());
        }
        if self.dim_head > 192 {
            return fail(format!(
                "dim_head {} is wider than the widest attention kernel (192)",
                self.dim_head
            ));
        }
        if self.time_emb_dim == 0 || self.steps == 0 || self.steps > 10_000 {
            return fail("time_emb_dim must be positive and steps in 1..=10000".into());
        }
        if !(0.0..1.0).contains(&self.schedule_s) {
            return fail(format!("schedule_s {} is outside [0, 1)", self.schedule_s));
        }
        Ok(())
    }

    /// Tokens per image.
    pub fn tokens(&self) -> usize {
        (self.input / self.patch).pow(2)
    }

    /// Values per patch (`channels · patch²`).
    pub fn patch_dim(&self) -> usize {
        self.channels * self.patch * self.patch
    }

    /// Width of q, k and v (`heads · dim_head`).
    pub fn inner(&self) -> usize {
        self.heads * self.dim_head
    }

    /// Width of the MLP's hidden layer.
    pub fn hidden(&self) -> usize {
        self.dim * self.mlp_mult
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.input * self.input
    }

    /// Every tensor a checkpoint must hold, with its shape (PyTorch `[out, in]`).
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (d, t, inner) = (self.dim, self.time_emb_dim, self.inner());
        let mut v = vec![
            ("patch_embed.weight".to_string(), vec![d, self.patch_dim()]),
            ("time_mlp.1.weight".into(), vec![t, d / 2]),
            ("time_mlp.3.weight".into(), vec![t, t]),
        ];
        for i in 0..self.depth {
            let b = format!("blocks.{i}.");
            for q in ["to_q", "to_k", "to_v"] {
                v.push((format!("{b}attn.{q}.weight"), vec![inner, d]));
            }
            v.push((format!("{b}attn.to_out.weight"), vec![d, inner]));
            v.push((format!("{b}ff.net.0.weight"), vec![self.hidden(), d]));
            v.push((format!("{b}ff.net.2.weight"), vec![d, self.hidden()]));
            for n in ["norm1", "norm2"] {
                v.push((format!("{b}{n}.scale_proj.weight"), vec![d, t]));
                v.push((format!("{b}{n}.shift_proj.weight"), vec![d, t]));
            }
        }
        v.push(("final_norm.scale_proj.weight".into(), vec![d, t]));
        v.push(("final_norm.shift_proj.weight".into(), vec![d, t]));
        v.push(("to_pixels.weight".into(), vec![self.patch_dim(), d]));
        v.push(("proj_fin.weight".into(), vec![self.patch_dim(), d]));
        v.push(("proj_fin.bias".into(), vec![self.patch_dim()]));
        v
    }

    /// Parameter count.
    pub fn params(&self) -> usize {
        self.expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// The fixed 2-D sinusoidal position embedding `[tokens, dim]`.
    pub fn pos_embedding(&self) -> Vec<f32> {
        let g = self.input / self.patch;
        let half = self.dim / 2;
        let mut out = Vec::with_capacity(g * g * self.dim);
        for n in 0..g * g {
            out.extend(sinus((n / g) as f64, half));
            out.extend(sinus((n % g) as f64, half));
        }
        out
    }
}

/// `sinus(v, d)`: `d/2` frequencies `f_i = exp(-i·ln(10000)/(d/2 - 1))`, sines then cosines.
pub fn sinus(v: f64, d: usize) -> Vec<f32> {
    let half = d / 2;
    let f = |i: usize| (-(i as f64) * 10000f64.ln() / (half as f64 - 1.0)).exp();
    let sines = (0..half).map(|i| (v * f(i)).sin() as f32);
    let cosines = (0..half).map(|i| (v * f(i)).cos() as f32);
    sines.chain(cosines).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_sizes() {
        // The reference table's counts plus the auxiliary x0 head (proj_fin), which it leaves out.
        assert_eq!(Config::favicon_s().params(), 10_862_592 + 512 * 192 + 192);
        assert_eq!(Config::favicon_b().params(), 94_150_656 + 768 * 48 + 48);
        assert_eq!(Config::favicon_s().tokens(), 64);
        assert_eq!(Config::favicon_b().tokens(), 256);
    }

    #[test]
    fn bad_configs_are_rejected() {
        let bad = Config {
            patch: 7,
            ..Config::favicon_s()
        };
        assert!(bad.validate().unwrap_err().0.contains("multiple of patch"));
        assert!(Config::from_json("{\"input\": 64}").is_err());
        let json = Config::favicon_b().to_json();
        assert_eq!(Config::from_json(&json).unwrap(), Config::favicon_b());
    }
}
