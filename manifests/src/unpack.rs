//! Unpacking a verified `.tar.gz` into a fresh private directory, refusing anything that could
//! write outside it or exhaust the disk: absolute paths, `..`, every symlink and hard link, device
//! nodes and FIFOs, an entry named twice, entries larger than their header says, and archives that
//! expand past a size cap (gzip bombs). Only call this on bytes whose signature has been checked.
//!
//! Links are refused outright, not checked: a chain of links that each look inside can still
//! resolve outside (`x -> a/l/../..` where `a/l -> ../..`), and a link to a directory makes tree
//! walks loop. Our bundles are written by `release::write_bundle`, which stores regular files only,
//! so a link in a signed bundle means the build was not ours.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of file content after decompression.
    pub max_total: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_total: 512 * 1024 * 1024, max_entries: 10_000 }
    }
}

impl Limits {
    /// Caps expansion relative to the verified compressed size: real bundles expand about 3x
    /// (binaries) to 1x (already compressed data); a gzip bomb expands about 1000x and is stopped
    /// after a few dozen MiB instead of filling the disk.
    pub fn for_compressed(size: u64) -> Limits {
        let max_total = size.saturating_mul(20).clamp(64 * 1024 * 1024, Limits::default().max_total);
        Limits { max_total, ..Limits::default() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("archive entry {path:?}: {why}; the bundle is unsafe and was not unpacked")]
    Unsafe { path: String, why: String },
    #[error("archive expands past {limit} bytes (a decompression bomb?); refusing it")]
    TooLarge { limit: u64 },
    #[error("archive has more than {0} entries; refusing it")]
    TooManyEntries(u64),
    #[error("archive is corrupt: {0}")]
    Corrupt(io::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// Counts decompressed bytes so the cap holds however the tar headers lie.
struct Capped<R> {
    inner: R,
    seen: u64,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        if self.seen > self.limit {
            return Err(io::Error::other(CapExceeded));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct CapExceeded;
impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("size cap exceeded")
    }
}
impl std::error::Error for CapExceeded {}

fn corrupt_or_cap(e: io::Error, limit: u64) -> UnpackError {
    let capped = e.get_ref().is_some_and(|inner| inner.is::<CapExceeded>());
    if capped {
        UnpackError::TooLarge { limit }
    } else {
        UnpackError::Corrupt(e)
    }
}

/// A relative path made only of normal components.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Refuses to write through anything but real directories we made, so a symlink entry can never
/// redirect a later entry.
fn ensure_dirs(root: &Path, rel: &Path) -> Result<(), UnpackError> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::Unsafe {
                    path: rel.display().to_string(),
                    why: "a parent is not a directory (a link?)".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
                .mode(0o755)
                .create(&cur)
                .map_err(|source| UnpackError::Write { path: cur.clone(), source })?,
            Err(source) => return Err(UnpackError::Write { path: cur.clone(), source }),
        }
    }
    Ok(())
}

/// Unpacks a gzip-compressed tarball into `dest`, which must already exist and be empty.
/// Returns the number of regular files written.
pub fn unpack_tar_gz(archive: impl Read, dest: &Path, limits: Limits) -> Result<u64, UnpackError> {
    let gz = flate2::read::GzDecoder::new(archive);
    let capped = Capped { inner: gz, seen: 0, limit: limits.max_total };
    let mut ar = tar::Archive::new(capped);
    let mut files = 0u64;
    let mut entries = 0u64;
    for entry in ar.entries().map_err(UnpackError::Corrupt)? {
        let mut entry = entry.map_err(|e| corrupt_or_cap(e, limits.max_total))?;
        entries += 1;
        if entries > limits.max_entries {
            return Err(UnpackError::TooManyEntries(limits.max_entries));
        }
        let raw_path = entry.path().map_err(UnpackError::Corrupt)?.into_owned();
        let shown = raw_path.display().to_string();
        let unsafe_entry = |why: &str| UnpackError::Unsafe { path: shown.clone(), why: why.to_string() };
        let rel = safe_relative(&raw_path).ok_or_else(|| unsafe_entry("absolute path or '..' component"))?;
        let out = dest.join(&rel);
        let parent = rel.parent().unwrap_or(Path::new(""));
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        match kind {
            tar::EntryType::Directory => ensure_dirs(dest, &rel)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let declared = entry.header().size().map_err(UnpackError::Corrupt)?;
                if declared > limits.max_total {
                    return Err(UnpackError::TooLarge { limit: limits.max_total });
                }
                ensure_dirs(dest, parent)?;
                // create_new: an entry can never replace or write through something already there.
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
                    .open(&out)
                    .map_err(|source| match source.kind() {
                        io::ErrorKind::AlreadyExists => unsafe_entry("named twice in the archive"),
                        _ => UnpackError::Write { path: out.clone(), source },
                    })?;
                let written = copy_exact(&mut entry, &mut f, declared, limits.max_total)?;
                if written != declared {
                    return Err(unsafe_entry("content length differs from the header"));
                }
                files += 1;
            }
            tar::EntryType::Symlink => {
                return Err(unsafe_entry("symbolic links are not allowed (a release bundle holds regular files only)"))
            }
            tar::EntryType::Link => {
                return Err(unsafe_entry("hard links are not allowed (a release bundle holds regular files only)"))
            }
            tar::EntryType::Char | tar::EntryType::Block => return Err(unsafe_entry("device nodes are not allowed")),
            tar::EntryType::Fifo => return Err(unsafe_entry("FIFOs are not allowed")),
            // pax and GNU long-name headers are consumed by the tar crate; anything else is unknown.
            other => return Err(unsafe_entry(&format!("unsupported entry type {other:?}"))),
        }
    }
    Ok(files)
}

fn copy_exact(r: &mut impl Read, w: &mut File, declared: u64, cap: u64) -> Result<u64, UnpackError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt_or_cap(e, cap)),
        };
        n += k as u64;
        if n > declared {
            break;
        }
        w.write_all(&buf[..k]).map_err(|source| UnpackError::Write { path: PathBuf::from("(entry)"), source })?;
    }
    Ok(n)
}
