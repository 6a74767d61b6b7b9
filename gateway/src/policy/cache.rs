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
//! keygate creates it with mode 0700 and, before every read and write,
//! refuses it unless it and each directory above it are owned by keygate's
//! user or root and writable by no one else (a sticky directory such as
//! `/tmp` may be writable by all). Entries that are not regular files
//! (symbolic links, say) are refused too.
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

/// Temporary files older than this are left from an interrupted write.
const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(600);

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
    /// The user keygate runs as, found by creating a file.
    uid: u32,
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
        let dir = dir
            .canonicalize()
            .map_err(|e| format!("policy cache {}: {e}", dir.display()))?;
        let uid = own_uid(&dir).map_err(|e| format!("policy cache {}: {e}", dir.display()))?;
        check_trusted(&dir, uid).map_err(|e| format!("policy cache {e}"))?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        Ok(ModuleCache {
            dir,
            uid,
            engine_hash: format!("{:016x}", hasher.finish()),
        })
    }

    fn entry(&self, module: &Digest) -> PathBuf {
        self.dir
            .join(format!("{module}-{}.cwasm", self.engine_hash))
    }

    /// The compiled form of the module with digest `module`, if cached.
    pub fn get(&self, engine: &Engine, module: &Digest) -> Lookup {
        if let Err(e) = check_trusted(&self.dir, self.uid) {
            return Lookup::Invalid(format!("not using the policy cache {e}"));
        }
        let path = self.entry(module);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Ok(meta) if !meta.file_type().is_file() => {
                return self.invalid(&path, "not a regular file".into());
            }
            _ => {}
        }
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
        check_trusted(&self.dir, self.uid)
            .map_err(|e| format!("not using the policy cache {e}"))?;
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
        let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(modified) = entry.metadata().and_then(|m| m.modified()).ok() else {
                continue;
            };
            if name.ends_with(".cwasm") {
                found.push((modified, entry.path()));
            } else if name.starts_with(".tmp-")
                && modified.elapsed().is_ok_and(|age| age > STALE_TEMPORARY)
            {
                // Left by a keygate that died while writing an entry.
                let _ = fs::remove_file(entry.path());
            }
        }
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

/// The user id this process creates files as: that of a file made in `dir`.
fn own_uid(dir: &Path) -> Result<u32, String> {
    let probe = dir.join(format!(".tmp-uid-{}", std::process::id()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&probe)
        .map_err(|e| format!("cannot create a file in it; {e}"))?;
    let uid = file.metadata().map(|m| m.uid());
    let _ = fs::remove_file(&probe);
    uid.map_err(|e| e.to_string())
}

/// Refuse `dir` if anyone but `uid` (or root) could have written entries
/// into it, or replaced it or a directory above it.
fn check_trusted(dir: &Path, uid: u32) -> Result<(), String> {
    let meta = fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{}: not a directory", dir.display()));
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{}: writable by group or others (mode {:o}); compiled code from it would run \
             unchecked, so make it 0700",
            dir.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    for path in dir.ancestors() {
        let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let owner = meta.uid();
        if owner != uid && owner != 0 {
            return Err(format!(
                "{}: owned by uid {owner}, neither keygate's user ({uid}) nor root; compiled \
                 code from it would run unchecked",
                path.display()
            ));
        }
        let mode = meta.permissions().mode();
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !(sticky && path != dir) {
            return Err(format!(
                "{}: writable by group or others (mode {:o}); compiled code from it would run \
                 unchecked",
                path.display(),
                mode & 0o7777
            ));
        }
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
        let uid = own_uid(&dir).unwrap();
        assert!(check_trusted(&dir, uid).is_ok());
        // Owned by another user: as root, give it away; otherwise, claim
        // to be someone else.
        let err = if uid == 0 {
            std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
            check_trusted(&dir, 0).unwrap_err()
        } else {
            check_trusted(&dir, uid + 1).unwrap_err()
        };
        assert!(err.contains("owned by uid"), "{err}");
        if uid == 0 {
            std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_trusted(&dir, uid).unwrap_err();
        assert!(err.contains("writable by group or others"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
