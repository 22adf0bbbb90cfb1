//! Compiled pipelines kept between runs (native only): wgpu's [`wgpu::PipelineCache`] (the
//! driver's own cache blob; Vulkan has one) in one file per adapter, driver and build of the
//! kernels.
//!
//! Where: `$WEBDIT_CACHE_DIR` if set, else the user's cache directory (`$XDG_CACHE_HOME`,
//! else `~/.cache` on Linux) under `webdit/`. The file starts with a header of our own:
//!
//! ```text
//! "WEBDITPC" | format u32 | key length u32 | key | kernels length u32 | kernels
//!            | data length u64 | xxh3-64 of kernels and data | data
//! ```
//!
//! `kernels` names the kernel variants compiled into the data, one per line, so a run can
//! tell a variant it would load from the cache (milliseconds) from one it would compile
//! (up to half a second for a tensor-core kernel on a cold driver).
//!
//! The key names the adapter, its driver and the hash of every kernel's WGSL, so a file
//! written for another GPU, driver or build is recognised and replaced, as are truncated and
//! corrupt ones: each is reported in one line on stderr and ignored, never a crash.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

const MAGIC: &[u8; 8] = b"WEBDITPC";
const FORMAT: u32 = 2;
/// The environment variable that overrides the cache directory.
pub const DIR_VAR: &str = "WEBDIT_CACHE_DIR";

/// Why a cache file was not used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadCache {
    #[error("not a Web DiT pipeline cache")]
    Magic,
    #[error("format {0}, this build reads format {FORMAT}")]
    Format(u32),
    #[error("truncated")]
    Truncated,
    #[error("written for another adapter, driver or build of the kernels")]
    Foreign,
    #[error("checksum mismatch (corrupt)")]
    Checksum,
}

/// The directory compiled pipelines are kept in.
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os(DIR_VAR) {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::cache_dir().map(|d| d.join("webdit")),
    }
}

/// The key a cache file must carry for this adapter and this build's kernels.
pub fn key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{}|{:?}|{:#x}:{:#x}|{}|{}|kernels {:016x}",
        wgpu::util::pipeline_cache_key(info).unwrap_or_default(),
        info.backend,
        info.vendor,
        info.device,
        info.driver,
        info.driver_info,
        crate::kernels::SOURCE_HASH
    )
}

/// The file for `key` in `dir`.
pub fn file(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("pipelines-{:016x}.bin", xxh3_64(key.as_bytes())))
}

fn checksum(kernels: &[u8], data: &[u8]) -> u64 {
    let mut h = Xxh3::new();
    h.update(kernels);
    h.update(data);
    h.digest()
}

/// The driver's `data`, holding the variants named in `kernels`, with the header for `key`.
pub fn encode<'a>(key: &str, kernels: impl IntoIterator<Item = &'a str>, data: &[u8]) -> Vec<u8> {
    let kernels = kernels.into_iter().collect::<Vec<_>>().join("\n");
    let mut out = Vec::with_capacity(data.len() + key.len() + kernels.len() + 36);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    for field in [key, &kernels] {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(kernels.as_bytes(), data).to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// A cache file's contents: the variants compiled into it and the driver's data.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub kernels: BTreeSet<String>,
    pub data: &'a [u8],
}

/// The contents of a cache file, if the file is whole and was written for `key`.
pub fn decode<'a>(key: &str, file: &'a [u8]) -> Result<Decoded<'a>, BadCache> {
    let mut rest = file;
    let mut take = |n: usize| -> Result<&'a [u8], BadCache> {
        if rest.len() < n {
            return Err(BadCache::Truncated);
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
    let u64_at = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
    if take(8).map_err(|_| BadCache::Magic)? != MAGIC {
        return Err(BadCache::Magic);
    }
    let format = u32_at(take(4)?);
    if format != FORMAT {
        return Err(BadCache::Format(format));
    }
    let key_len = u32_at(take(4)?) as usize;
    if take(key_len)? != key.as_bytes() {
        return Err(BadCache::Foreign);
    }
    let kernels_len = u32_at(take(4)?) as usize;
    let kernels = take(kernels_len)?;
    let len = u64_at(take(8)?);
    let sum = u64_at(take(8)?);
    let data = take(usize::try_from(len).map_err(|_| BadCache::Truncated)?)?;
    if checksum(kernels, data) != sum {
        return Err(BadCache::Checksum);
    }
    let kernels = std::str::from_utf8(kernels).map_err(|_| BadCache::Checksum)?;
    Ok(Decoded {
        kernels: kernels
            .split('\n')
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect(),
        data,
    })
}

/// An open cache: the driver's cache object and the file it is saved to.
pub struct Cache {
    cache: wgpu::PipelineCache,
    key: String,
    path: PathBuf,
    /// The variants compiled into `cache`: those of the file and those compiled since.
    kernels: Mutex<BTreeSet<String>>,
    dirty: AtomicBool,
}

impl Cache {
    /// Loads this adapter's cache file, if there is a usable one (else starts empty).
    /// `None` where there is no cache directory.
    pub fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<Cache> {
        let key = key(info);
        let path = file(&dir()?, &key);
        let bytes = std::fs::read(&path).ok();
        let decoded = bytes.as_deref().and_then(|b| match decode(&key, b) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!(
                    "warning: ignoring the pipeline cache {} ({e}); it will be rewritten",
                    path.display()
                );
                None
            }
        });
        let data = decoded.as_ref().map(|d| d.data);
        // SAFETY: `data` is only ever what `get_data` returned for an adapter with the same
        // key (checked above, with a checksum); `fallback` makes the driver start empty if it
        // rejects the blob anyway.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("webdit pipelines"),
                data,
                fallback: true,
            })
        };
        let rejected = bytes.is_some() && data.is_none();
        Some(Cache {
            cache,
            key,
            path,
            kernels: Mutex::new(decoded.map(|d| d.kernels).unwrap_or_default()),
            // A rejected file is rewritten even if nothing new is compiled.
            dirty: AtomicBool::new(rejected),
        })
    }

    /// The file the cache is saved to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the variant `kernel` was compiled into the cache (by this run or an earlier
    /// one), so that creating its pipeline loads it instead of compiling it.
    pub fn holds(&self, kernel: &str) -> bool {
        self.kernels.lock().expect("no panics").contains(kernel)
    }

    /// The cache, for the variant `kernel` about to be compiled (which makes it worth
    /// saving).
    pub fn compiled(&self, kernel: &str) -> &wgpu::PipelineCache {
        self.kernels
            .lock()
            .expect("no panics")
            .insert(kernel.to_owned());
        self.dirty.store(true, Ordering::Relaxed);
        &self.cache
    }

    /// Writes the cache file (through a temporary file and a rename, so a crash never leaves
    /// half a file) if anything was compiled since it was loaded.
    pub fn save(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let write = || -> std::io::Result<()> {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = self
                .path
                .with_extension(format!("tmp{}", std::process::id()));
            let kernels = self.kernels.lock().expect("no panics");
            std::fs::write(
                &tmp,
                encode(&self.key, kernels.iter().map(|k| k.as_str()), &data),
            )?;
            std::fs::rename(&tmp, &self.path)
        };
        if let Err(e) = write() {
            eprintln!(
                "warning: could not write the pipeline cache {}: {e}",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_bad_file() {
        let data = b"driver blob".repeat(10);
        let file = encode("k1", ["matmul_f16", "adaln"], &data);
        let want = Decoded {
            kernels: ["adaln".to_owned(), "matmul_f16".to_owned()].into(),
            data: &data[..],
        };
        assert_eq!(decode("k1", &file), Ok(want));
        let empty = encode("k1", [], &data);
        assert_eq!(decode("k1", &empty).map(|d| d.kernels.len()), Ok(0));
        assert_eq!(decode("k2", &file), Err(BadCache::Foreign));
        assert_eq!(decode("k1", b""), Err(BadCache::Magic));
        assert_eq!(decode("k1", b"PNG\r\n\x1a\n-----"), Err(BadCache::Magic));
        for cut in [9, 14, 20, file.len() - 1] {
            assert_eq!(
                decode("k1", &file[..cut]),
                Err(BadCache::Truncated),
                "{cut}"
            );
        }
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode("k1", &flipped), Err(BadCache::Checksum));
        let mut future = file.clone();
        future[8] = 9;
        assert_eq!(decode("k1", &future), Err(BadCache::Format(9)));
        // A huge length field is a truncated file, not an allocation.
        let mut long = file.clone();
        let at = 8 + 4 + 4 + 2 + 4 + "matmul_f16\nadaln".len();
        long[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(decode("k1", &long), Err(BadCache::Truncated));
    }
}
