//! The original project's `WTS1` weights format (`matrices.bin`): magic "WTS1", u32 count,
//! then per tensor: u32 key length, key bytes padded to 4, u32 rank, `rank` u32 dims, u32
//! element count, f32 data (all little-endian). Keys use `block_{i}.` and
//! `normX.scale.weight`/`normX.shift.weight`; they are renamed to the state_dict names.

use crate::checkpoint::{Checkpoint, CheckpointError, Files};
use crate::config::Config;
use safetensors::{tensor::TensorView, Dtype};

fn err(message: String) -> CheckpointError {
    CheckpointError::Format {
        file: "WTS1".into(),
        message,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CheckpointError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            err(format!(
                "truncated: {what} at byte {} needs {n} bytes, {} left",
                self.at,
                self.bytes.len() - self.at
            ))
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32, CheckpointError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The state_dict name of a WTS1 key.
pub fn rename(key: &str) -> String {
    let mut k = key.to_string();
    if let Some(rest) = k.strip_prefix("block_") {
        k = format!("blocks.{rest}");
    }
    k.replace(".scale.weight", ".scale_proj.weight")
        .replace(".shift.weight", ".shift_proj.weight")
}

/// Parses a WTS1 file into a checked checkpoint (configuration from `preset`, else matched
/// against the presets by shape).
pub fn parse(bytes: &[u8], preset: Option<&Config>) -> Result<Checkpoint, CheckpointError> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4, "magic")? != b"WTS1" {
        return Err(err("not a WTS1 file (bad magic)".into()));
    }
    let count = r.u32("tensor count")?;
    let mut tensors: Vec<(String, Vec<usize>, &[u8])> = vec![];
    for i in 0..count {
        let len = r.u32("key length")? as usize;
        let key = r.take(len, "key")?;
        r.take((4 - len % 4) % 4, "key padding")?;
        let key =
            std::str::from_utf8(key).map_err(|_| err(format!("tensor {i}: key is not UTF-8")))?;
        let rank = r.u32("rank")? as usize;
        if rank > 8 {
            return Err(err(format!("tensor `{key}`: rank {rank} is implausible")));
        }
        let dims: Vec<usize> = (0..rank)
            .map(|_| r.u32("dims").map(|d| d as usize))
            .collect::<Result<_, _>>()?;
        let n = r.u32("element count")? as usize;
        if dims.iter().try_fold(1usize, |p, d| p.checked_mul(*d)) != Some(n) {
            return Err(err(format!(
                "tensor `{key}`: dims {dims:?} do not hold {n} elements"
            )));
        }
        let data = r.take(
            n.checked_mul(4)
                .ok_or_else(|| err("size overflow".into()))?,
            "data",
        )?;
        tensors.push((rename(key), dims, data));
    }
    if r.at != bytes.len() {
        return Err(err(format!(
            "{} trailing bytes after {count} tensors",
            bytes.len() - r.at
        )));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, data)| {
            Ok((
                n.clone(),
                TensorView::new(Dtype::F32, d.clone(), data).map_err(|e| err(e.to_string()))?,
            ))
        })
        .collect::<Result<_, CheckpointError>>()?;
    let st = safetensors::serialize(views, None).map_err(|e| err(e.to_string()))?;
    Checkpoint::from_files(
        Files {
            files: vec![("converted".into(), &st)],
            index: None,
        },
        preset,
    )
}
