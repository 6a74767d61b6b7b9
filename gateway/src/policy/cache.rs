//! An on-disk cache of compiled policy components.
//!
//! Compiling a component is the slow part of a load: ~0.2 s for a small
//! Rust policy, ~9 s for a Python policy that embeds its interpreter. The
//! cache keeps wasmtime's compiled artefact for each module keygate has
//! seen, so a restart or a reload of a known module skips compilation.
//!
//! An entry is named by the SHA-256 of the module's bytes and a hash of
//! everything in the engine that decides whether compiled code fits it
//! (wasmtime's own compatibility hash plus keygate's version), so an
//! upgraded keygate or a changed engine setting never picks up an old
//! entry. Each file starts with a header holding the SHA-256 of the
//! artefact; an entry that is short, corrupt or from another build is
//! ignored, deleted and rebuilt. Entries are written to a temporary file
//! and renamed into place, never edited, so a reader sees a whole entry or
//! none, even with two keygate processes sharing the directory.
//!
//! Loading compiled code runs it without the checks compilation makes, so
//! the cache directory must be as trusted as the keygate binary itself:
//! keygate creates it with mode 0700 and refuses to use a directory that
//! another user owns or that others may write to.
//!
//! The cache keeps the [`KEEP`] most recently used entries and deletes the
//! rest after each write; there is no size bound beyond that.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::runtime::Digest;

/// Entries kept after a write; older ones are deleted.
pub const KEEP: usize = 16;

/// First bytes of every entry, naming the format.
const MAGIC: &[u8; 16] = b"keygate-cwasm-1\n";
/// Header: magic, then the SHA-256 of the artefact that follows.
const HEADER: usize = MAGIC.len() + 32;

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    /// A valid entry, loaded.
    Hit(Component),
    /// No entry for this module and engine.
    Miss,
    /// An entry that could not be used; it was removed. The string says why.
    Invalid(String),
}

/// A directory of compiled components.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    engine_hash: String,
}

impl ModuleCache {
    /// Use `dir` (creating it, mode 0700) for modules compiled by `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<ModuleCache, String> {
        let fail = |e: std::io::Error| format!("policy cache {}: {e}", dir.display());
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        check_trusted(dir).map_err(|e| format!("policy cache {}: {e}", dir.display()))?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(ModuleCache {
            dir: dir.to_owned(),
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, module: &Digest) -> PathBuf {
        self.dir
            .join(format!("{module}-{}.cwasm", self.engine_hash))
    }

    /// The compiled form of the module with digest `module`, if cached.
    pub fn get(&self, engine: &Engine, module: &Digest) -> Lookup {
        let path = self.entry(module);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(e) => return self.invalid(&path, format!("unreadable; {e}")),
        };
        let Some(artefact) = verified(&bytes) else {
            return self.invalid(&path, "truncated or corrupt".into());
        };
        // SAFETY: the artefact was written by `put` in this directory, which
        // only this user can write (checked in `open`), and its checksum
        // matches, so it is the unmodified output of `Component::serialize`
        // from an engine with the same compatibility hash. wasmtime checks
        // the engine settings in the artefact again before loading it.
        #[expect(unsafe_code, reason = "loading precompiled code keygate wrote itself")]
        let component = unsafe { Component::deserialize(engine, artefact) };
        match component {
            Ok(component) => {
                touch(&path);
                Lookup::Hit(component)
            }
            Err(e) => self.invalid(&path, super::runtime::chain(&e)),
        }
    }

    fn invalid(&self, path: &Path, why: String) -> Lookup {
        let _ = fs::remove_file(path);
        Lookup::Invalid(format!("{}: {why}", path.display()))
    }

    /// Store the compiled form of the module with digest `module`, then
    /// delete the least recently used entries beyond [`KEEP`].
    pub fn put(&self, module: &Digest, component: &Component) -> Result<(), String> {
        let artefact = component
            .serialize()
            .map_err(|e| format!("failed to serialise; {}", super::runtime::chain(&e)))?;
        let path = self.entry(module);
        write_atomic(&path, &artefact)
            .map_err(|e| format!("failed to write {}; {e}", path.display()))?;
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut found: Vec<(SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, path) in found.into_iter().skip(KEEP) {
            let _ = fs::remove_file(path);
        }
    }
}

/// The artefact inside an entry, if the header and checksum hold.
fn verified(bytes: &[u8]) -> Option<&[u8]> {
    let (header, artefact) = bytes.split_at_checked(HEADER)?;
    let (magic, sum) = header.split_at_checked(MAGIC.len())?;
    (magic == MAGIC && Sha256::digest(artefact).as_slice() == sum).then_some(artefact)
}

/// Write header and artefact to a temporary file beside `path`, flush it to
/// disk, and rename it over `path`.
fn write_atomic(path: &Path, artefact: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(artefact))?;
        file.write_all(artefact)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Mark an entry as just used, for pruning.
fn touch(path: &Path) {
    if let Ok(file) = fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Refuse a directory that someone other than this user could have written
/// entries into.
fn check_trusted(dir: &Path) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("not a directory".into());
    }
    let me = fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if me.is_some_and(|uid| uid != meta.uid()) {
        return Err(format!(
            "owned by uid {}, not by the user keygate runs as; compiled code from it would \
             run unchecked",
            meta.uid()
        ));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "writable by group or others (mode {:o}); compiled code from it would run \
             unchecked, so make it 0700",
            meta.permissions().mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_only_with_its_checksum() {
        let artefact = b"compiled code".to_vec();
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&Sha256::digest(&artefact));
        entry.extend_from_slice(&artefact);
        assert_eq!(verified(&entry), Some(&artefact[..]));

        let mut flipped = entry.clone();
        if let Some(last) = flipped.last_mut() {
            *last ^= 1;
        }
        assert_eq!(verified(&flipped), None);
        assert_eq!(verified(&entry[..HEADER - 1]), None);
        assert_eq!(verified(b""), None);
    }

    #[test]
    fn a_directory_others_may_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("keygate-cache-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        assert!(check_trusted(&dir).is_ok());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted(&dir).unwrap_err();
        assert!(err.contains("writable by group or others"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
