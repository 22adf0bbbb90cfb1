//! Any bytes, as a safetensors checkpoint (alone or with a shard index) and as a WTS1 file:
//! the loader must return a checked checkpoint or an error, never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webdit_model::checkpoint::{Checkpoint, Files};

fuzz_target!(|data: &[u8]| {
    let _ = Checkpoint::from_files(Files { files: vec![("f.safetensors".into(), data)], index: None }, None);
    if let Some((split, rest)) = data.split_first() {
        let at = (*split as usize).min(rest.len());
        if let Ok(index) = std::str::from_utf8(&rest[..at]) {
            let files = Files { files: vec![("a.safetensors".into(), &rest[at..])], index: Some(index) };
            let _ = Checkpoint::from_files(files, None);
        }
    }
    let _ = webdit_model::wts1::parse(data, None);
});
