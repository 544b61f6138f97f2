//! The backup archive format: a gzip-compressed tar, optionally age-encrypted, that any tar reads.
//!
//! ```text
//! backup-header.json      first: format, instance, Vikunja version, creation time, database type
//! database/vikunja.<ext>  the consistent dump (dbbackup)
//! config/…  state/…       settings (secrets included) and state files
//! files/…                 attachments
//! logs/…                  only with --include-logs
//! backup-manifest.json    last: the header's fields and path, type, mode, size and sha256 of every entry
//! ```
//!
//! Written in one pass (the manifest goes last because hashes are known only after the data went
//! by), and read in one pass: the header lets a restore refuse early (wrong instance, missing
//! release), and nothing read is trusted before the manifest at the end matched every entry and the
//! gzip trailer (and, encrypted, age's final tag) checked out. Only directories and regular files
//! with plain relative paths under the five top directories are accepted.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use manifests::hash::Sha256;
use serde::{Deserialize, Serialize};

use crate::data::crypt::{self, CryptError, Unlock};
use crate::error::Failed;

pub const FORMAT: u32 = 1;
pub const PRODUCT: &str = "vikunja-pve backup";
pub const HEADER_ENTRY: &str = "backup-header.json";
pub const MANIFEST_ENTRY: &str = "backup-manifest.json";
pub const TOP_DIRS: &[&str] = &["database", "config", "state", "files", "logs"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub product: String,
    pub instance: String,
    pub vikunja_version: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// sqlite, postgres or mysql.
    pub database: String,
    /// The archive path of the dump, under `database/`.
    pub database_entry: String,
    /// The colour that served when the backup was made.
    pub colour: String,
    pub include_logs: bool,
    pub installer_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(flatten)]
    pub header: Header,
    /// Every entry before the manifest, in archive order (the header entry first).
    pub entries: Vec<Entry>,
}

impl Manifest {
    pub fn data_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
    pub fn files(&self) -> usize {
        self.entries.iter().filter(|e| e.kind == Kind::File).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a backup made by vikunja-installer: {why}")]
    NotABackup { why: String },
    #[error("the backup is damaged or truncated ({0}): it cannot be used; restore another one (vikunja-installer backup list)")]
    Corrupt(io::Error),
    #[error("unsafe archive entry {path:?}: {why}; the backup was refused: restore another one (vikunja-installer backup list)")]
    Unsafe { path: String, why: String },
    #[error("the backup does not match its manifest: {0}; it was changed after it was made: restore another one (vikunja-installer backup list)")]
    Mismatch(String),
    #[error("the backup has format {0}, which this installer does not know: use the installer release that made it, or a newer one")]
    Format(u32),
    #[error("{0}")]
    Crypt(#[from] CryptError),
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}{hint}", hint = disk_hint(source))]
    Write { path: PathBuf, source: io::Error },
    /// The caller's check of the header refused the backup.
    #[error("{0}")]
    Refused(Failed),
}

fn disk_hint(e: &io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        "; the disk is full: free space (df -h) and run the command again"
    } else {
        ""
    }
}

impl ArchiveError {
    /// The exit code: everything that says the archive cannot be trusted is a verification failure.
    pub fn exit(&self) -> manifests::Exit {
        use manifests::Exit;
        match self {
            ArchiveError::Refused(f) => f.code,
            ArchiveError::Open { .. } | ArchiveError::Write { .. } => Exit::Error,
            ArchiveError::Crypt(CryptError::NeedPassphrase | CryptError::NeedIdentity | CryptError::NoPassphrase) => {
                Exit::Usage
            }
            ArchiveError::Crypt(CryptError::PassphraseFile { .. } | CryptError::BadIdentity { .. }) => Exit::Usage,
            _ => Exit::Verification,
        }
    }
}

fn corrupt(e: io::Error) -> ArchiveError {
    ArchiveError::Corrupt(e)
}

// ---------------------------------------------------------------- writing

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.hash.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

pub struct Writer<W: Write> {
    tar: tar::Builder<W>,
    header: Header,
    entries: Vec<Entry>,
    paths: HashSet<String>,
}

/// Something the backup left out, for the report.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: &'static str,
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o777);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

impl<W: Write> Writer<W> {
    pub fn new(w: W, header: Header) -> io::Result<Writer<W>> {
        let mut tar = tar::Builder::new(w);
        tar.follow_symlinks(false);
        let mut me = Writer { tar, header, entries: Vec::new(), paths: HashSet::new() };
        let json = serde_json::to_vec_pretty(&me.header).map_err(io::Error::other)?;
        me.add_bytes(HEADER_ENTRY, &json)?;
        Ok(me)
    }

    fn add_bytes(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mtime = manifests::time::now_unix().max(0) as u64;
        let mut h = tar_header(tar::EntryType::Regular, 0o600, data.len() as u64, mtime);
        self.tar.append_data(&mut h, path, data)?;
        if path != MANIFEST_ENTRY {
            self.entries.push(Entry {
                path: path.into(),
                kind: Kind::File,
                mode: 0o600,
                size: data.len() as u64,
                sha256: Some(manifests::hash::sha256_hex(data)),
            });
        }
        Ok(())
    }

    pub fn add_dir(&mut self, path: &str, mode: u32, mtime: u64) -> io::Result<()> {
        self.claim(path)?;
        let mut h = tar_header(tar::EntryType::Directory, mode, 0, mtime);
        self.tar.append_data(&mut h, format!("{path}/"), io::empty())?;
        self.entries.push(Entry { path: path.into(), kind: Kind::Dir, mode: mode & 0o777, size: 0, sha256: None });
        Ok(())
    }

    fn claim(&mut self, path: &str) -> io::Result<()> {
        if !self.paths.insert(path.to_string()) {
            return Err(io::Error::other(format!("{path} was added to the backup twice")));
        }
        Ok(())
    }

    /// Streams a file into the archive, hashing it on the way. Returns false if it vanished
    /// before it could be opened (a deleted attachment).
    pub fn add_file(&mut self, path: &str, src: &Path) -> io::Result<bool> {
        let f = match File::open(src) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io::Error::new(e.kind(), format!("read {}: {e}", src.display()))),
        };
        let meta = f.metadata()?;
        let size = meta.len();
        self.claim(path)?;
        let mut h = tar_header(tar::EntryType::Regular, meta.mode(), size, meta.mtime().max(0) as u64);
        let mut r = Hashing { inner: f.take(size), hash: Sha256::default(), n: 0 };
        self.tar.append_data(&mut h, path, &mut r)?;
        if r.n != size {
            return Err(io::Error::other(format!(
                "{} shrank from {size} to {} bytes while it was backed up; run the backup again",
                src.display(),
                r.n
            )));
        }
        self.entries.push(Entry {
            path: path.into(),
            kind: Kind::File,
            mode: meta.mode() & 0o777,
            size,
            sha256: Some(r.hash.finish_hex()),
        });
        Ok(true)
    }

    /// Adds `src` as `prefix/…`, depth first in name order; `skip(rel, is_dir)` leaves out runtime
    /// files. Links and special files are never followed nor stored; they are reported instead.
    pub fn add_tree(
        &mut self,
        prefix: &str,
        src: &Path,
        skip: &dyn Fn(&Path, bool) -> bool,
        skipped: &mut Vec<Skipped>,
    ) -> io::Result<()> {
        let meta = match fs::symlink_metadata(src) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.add_dir(prefix, meta.mode(), meta.mtime().max(0) as u64)?;
        self.walk(prefix, src, Path::new(""), skip, skipped)
    }

    fn walk(
        &mut self,
        prefix: &str,
        root: &Path,
        rel: &Path,
        skip: &dyn Fn(&Path, bool) -> bool,
        skipped: &mut Vec<Skipped>,
    ) -> io::Result<()> {
        let dir = root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", dir.display())))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for name in names {
            let rel_child = rel.join(&name);
            let full = root.join(&rel_child);
            let Some(name_str) = rel_child.to_str() else {
                skipped.push(Skipped { path: full, why: "its name is not UTF-8" });
                continue;
            };
            let archive_path = format!("{prefix}/{name_str}");
            let meta = match fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let ft = meta.file_type();
            if skip(&rel_child, ft.is_dir()) {
                continue;
            }
            if ft.is_dir() {
                self.add_dir(&archive_path, meta.mode(), meta.mtime().max(0) as u64)?;
                self.walk(prefix, root, &rel_child, skip, skipped)?;
            } else if ft.is_file() {
                if !self.add_file(&archive_path, &full)? {
                    skipped.push(Skipped { path: full, why: "it was deleted while the backup ran" });
                }
            } else if ft.is_symlink() {
                skipped.push(Skipped { path: full, why: "it is a symbolic link (links are never stored)" });
            } else {
                skipped.push(Skipped { path: full, why: "it is not a regular file or directory" });
            }
        }
        Ok(())
    }

    /// Writes the manifest and the end of the tar; returns the inner writer (still to be finished).
    pub fn finish(mut self) -> io::Result<(W, Manifest)> {
        let manifest = Manifest { header: self.header.clone(), entries: std::mem::take(&mut self.entries) };
        let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        self.add_bytes(MANIFEST_ENTRY, &json)?;
        Ok((self.tar.into_inner()?, manifest))
    }
}

// ---------------------------------------------------------------- reading

/// Plaintext blocks from the decompressing thread; an empty block means the gzip stream ended
/// with a correct trailer and nothing after it.
struct ChanReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    eof: bool,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.eof {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(block)) if block.is_empty() => self.eof = true,
                Ok(Ok(block)) => {
                    self.cur = block;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(io::Error::other("the decompression thread stopped")),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Decompresses on its own thread (and decrypts), so that inflating overlaps with hashing and
/// writing files, as `tar xzf` overlaps gzip and tar.
fn spawn_inflate(plain: Box<dyn BufRead + Send>) -> ChanReader {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::spawn(move || {
        let mut gz = flate2::bufread::GzDecoder::new(plain);
        loop {
            let mut block = vec![0u8; 256 * 1024];
            let mut filled = 0;
            while filled < block.len() {
                match gz.read(&mut block[filled..]) {
                    Ok(0) => break,
                    Ok(k) => filled += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
            if filled == 0 {
                break;
            }
            block.truncate(filled);
            if tx.send(Ok(block)).is_err() {
                return;
            }
        }
        // One gzip member, then nothing: bytes after it would be data no manifest vouches for.
        let mut rest = gz.into_inner();
        let end = match rest.fill_buf() {
            Ok([]) => Ok(Vec::new()),
            Ok(_) => {
                Err(io::Error::new(io::ErrorKind::InvalidData, "unexpected data after the end of the gzip stream"))
            }
            Err(e) => Err(e),
        };
        let _ = tx.send(end);
    });
    ChanReader { rx, cur: Vec::new(), pos: 0, eof: false }
}

/// Opens a backup file: the plaintext tar stream, and whether it was encrypted.
pub fn open(path: &Path, unlock: &Unlock) -> Result<(impl Read, bool), ArchiveError> {
    let f = File::open(path).map_err(|source| ArchiveError::Open { path: path.to_path_buf(), source })?;
    let mut br = BufReader::with_capacity(1 << 20, f);
    let magic = crypt::peek(&mut br, 32).map_err(|source| ArchiveError::Open { path: path.to_path_buf(), source })?;
    let (plain, encrypted): (Box<dyn BufRead + Send>, bool) = if crypt::is_encrypted(&magic) {
        (Box::new(BufReader::with_capacity(1 << 20, crypt::decrypt(br, unlock)?)), true)
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        (Box::new(br), false)
    } else {
        let why = if magic.is_empty() { "it is empty" } else { "it is neither gzip nor age-encrypted" };
        return Err(ArchiveError::NotABackup { why: why.into() });
    };
    Ok((spawn_inflate(plain), encrypted))
}

/// The first entry's header only (for `backup list`): cheap, and unverified.
pub fn peek_header(path: &Path) -> Option<Header> {
    let f = File::open(path).ok()?;
    let mut br = BufReader::new(f);
    if crypt::is_encrypted(&crypt::peek(&mut br, 32).ok()?) {
        return None;
    }
    let mut ar = tar::Archive::new(flate2::bufread::GzDecoder::new(br));
    let mut e = ar.entries().ok()?.next()?.ok()?;
    if e.path().ok()?.to_str()? != HEADER_ENTRY || e.size() > 1 << 20 {
        return None;
    }
    let mut text = Vec::new();
    e.read_to_end(&mut text).ok()?;
    serde_json::from_slice(&text).ok()
}

/// A relative path of plain names only, as a `/`-joined string.
fn safe_relative(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            // Control characters (a newline above all) could forge lines in the restore journal.
            Component::Normal(p) => parts.push(p.to_str().filter(|s| !s.chars().any(char::is_control))?),
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Creates `rel`'s directories under `dest`, refusing to go through anything that is not a real
/// directory (the staging tree holds only what this reader made, but be strict anyway).
fn ensure_dirs(dest: &Path, rel: &Path) -> Result<(), ArchiveError> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ArchiveError::Unsafe {
                    path: rel.display().to_string(),
                    why: "a parent is not a directory".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
                .mode(0o700)
                .create(&cur)
                .map_err(|source| ArchiveError::Write { path: cur.clone(), source })?,
            Err(source) => return Err(ArchiveError::Write { path: cur.clone(), source }),
        }
    }
    Ok(())
}

/// Starts writing a file's dirty pages to disk without waiting for it; the caller syncs once at
/// the end. The disk then works while the next entries are inflated, rather than all at the end.
pub fn start_writeback(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range(2) takes the descriptor of a file we own and keep open, and integers.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

fn read_small(e: &mut impl Read, size: u64, cap: u64, what: &str) -> Result<Vec<u8>, ArchiveError> {
    if size > cap {
        return Err(ArchiveError::Mismatch(format!("{what} is {size} bytes, more than the {cap} allowed")));
    }
    let mut v = Vec::with_capacity(size as usize);
    e.read_to_end(&mut v).map_err(corrupt)?;
    Ok(v)
}

/// Reads a whole archive (the plaintext tar stream from `open`), checking every entry against the
/// manifest. With `dest`, files and directories are written below it (which must exist and be
/// empty); without, they are only hashed. `check` sees the header as soon as it is read and may
/// refuse the backup before the bulk of it is read. Returns the manifest once everything matched.
pub fn read(
    r: impl Read,
    dest: Option<&Path>,
    check: &mut dyn FnMut(&Header) -> Result<(), Failed>,
) -> Result<Manifest, ArchiveError> {
    let mut ar = tar::Archive::new(r);
    let mut entries = ar.entries().map_err(corrupt)?;
    let not_backup = |why: &str| ArchiveError::Mismatch(why.to_string());

    let mut first = entries.next().ok_or_else(|| not_backup("the archive is empty"))?.map_err(corrupt)?;
    let first_path = first.path().map_err(corrupt)?.to_string_lossy().into_owned();
    if first_path != HEADER_ENTRY || first.header().entry_type() != tar::EntryType::Regular {
        return Err(not_backup(&format!("its first entry is {first_path:?}, not {HEADER_ENTRY}")));
    }
    let size = first.size();
    let first_mode = first.header().mode().map_err(corrupt)? & 0o777;
    let raw = read_small(&mut first, size, 1 << 20, HEADER_ENTRY)?;
    drop(first);
    let header: Header =
        serde_json::from_slice(&raw).map_err(|e| not_backup(&format!("{HEADER_ENTRY} is not valid: {e}")))?;
    if header.product != PRODUCT {
        return Err(not_backup(&format!("it is a {:?}, not a {PRODUCT}", header.product)));
    }
    if header.format != FORMAT {
        return Err(ArchiveError::Format(header.format));
    }
    check(&header).map_err(ArchiveError::Refused)?;
    let mut seen = vec![Entry {
        path: HEADER_ENTRY.into(),
        kind: Kind::File,
        mode: first_mode,
        size,
        sha256: Some(manifests::hash::sha256_hex(&raw)),
    }];
    let mut paths: HashSet<String> = HashSet::new();
    let mut manifest: Option<Manifest> = None;
    let mut buf = vec![0u8; 256 * 1024];

    for entry in entries.by_ref() {
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path().map_err(corrupt)?.into_owned();
        let shown = raw_path.display().to_string();
        let unsafe_entry = |why: &str| ArchiveError::Unsafe { path: shown.clone(), why: why.to_string() };
        if manifest.is_some() {
            return Err(unsafe_entry("an entry after the manifest (appended to the backup?)"));
        }
        let kind = entry.header().entry_type();
        if shown == MANIFEST_ENTRY && kind == tar::EntryType::Regular {
            let size = entry.size();
            let raw = read_small(&mut entry, size, 1 << 30, MANIFEST_ENTRY)?;
            manifest = Some(
                serde_json::from_slice(&raw)
                    .map_err(|e| ArchiveError::Mismatch(format!("{MANIFEST_ENTRY} is not valid: {e}")))?,
            );
            continue;
        }
        let rel = safe_relative(&raw_path).ok_or_else(|| unsafe_entry("absolute path, '..' or '.' component"))?;
        let top = rel.split('/').next().unwrap_or("");
        if !TOP_DIRS.contains(&top) {
            return Err(unsafe_entry(&format!("outside the backup's directories ({})", TOP_DIRS.join(", "))));
        }
        if !paths.insert(rel.clone()) {
            return Err(unsafe_entry("it appears twice"));
        }
        let mode = entry.header().mode().map_err(corrupt)? & 0o777;
        let rel_path = Path::new(&rel);
        match kind {
            tar::EntryType::Directory => {
                if let Some(dest) = dest {
                    ensure_dirs(dest, rel_path)?;
                    let p = dest.join(rel_path);
                    fs::set_permissions(&p, fs::Permissions::from_mode(mode | 0o700))
                        .map_err(|source| ArchiveError::Write { path: p, source })?;
                }
                seen.push(Entry { path: rel, kind: Kind::Dir, mode, size: 0, sha256: None });
            }
            tar::EntryType::Regular => {
                let declared = entry.size();
                let mut out = match dest {
                    Some(dest) => {
                        ensure_dirs(dest, rel_path.parent().unwrap_or(Path::new("")))?;
                        let p = dest.join(rel_path);
                        // create_new: an entry never replaces or writes through anything.
                        let f = OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(&p)
                            .map_err(|source| ArchiveError::Write { path: p.clone(), source })?;
                        Some((f, p))
                    }
                    None => None,
                };
                let mut hash = Sha256::default();
                let mut n = 0u64;
                loop {
                    let k = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(k) => k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(corrupt(e)),
                    };
                    hash.update(&buf[..k]);
                    n += k as u64;
                    if let Some((f, p)) = out.as_mut() {
                        f.write_all(&buf[..k]).map_err(|source| ArchiveError::Write { path: p.clone(), source })?;
                    }
                }
                if n != declared {
                    return Err(ArchiveError::Corrupt(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{rel} ends after {n} of {declared} bytes"),
                    )));
                }
                if let Some((f, p)) = out {
                    f.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(|source| ArchiveError::Write { path: p, source })?;
                    start_writeback(&f);
                }
                seen.push(Entry { path: rel, kind: Kind::File, mode, size: n, sha256: Some(hash.finish_hex()) });
            }
            tar::EntryType::Symlink | tar::EntryType::Link => return Err(unsafe_entry("links are not allowed")),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(unsafe_entry("device nodes and FIFOs are not allowed"))
            }
            other => return Err(unsafe_entry(&format!("unsupported entry type {other:?}"))),
        }
    }
    let manifest = manifest.ok_or_else(|| {
        ArchiveError::Corrupt(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the archive ends before its manifest (an interrupted or truncated backup)",
        ))
    })?;
    // The rest of the stream: tar padding, then the gzip trailer (CRC, length) and age's last tag.
    crypt::drain(ar.into_inner()).map_err(corrupt)?;
    compare(&header, &manifest, &seen)?;
    Ok(manifest)
}

fn compare(header: &Header, m: &Manifest, seen: &[Entry]) -> Result<(), ArchiveError> {
    let bad = |s: String| Err(ArchiveError::Mismatch(s));
    if &m.header != header {
        return bad(format!("the manifest's header differs from {HEADER_ENTRY}"));
    }
    for (i, got) in seen.iter().enumerate() {
        let Some(want) = m.entries.get(i) else {
            return bad(format!("{} is in the archive but not in the manifest", got.path));
        };
        if want.path != got.path {
            return bad(format!("entry {i} is {} in the archive but {} in the manifest", got.path, want.path));
        }
        if want.kind != got.kind || want.mode != got.mode {
            return bad(format!("{}: type or mode differs from the manifest", got.path));
        }
        if want.size != got.size {
            return bad(format!("{}: {} bytes, the manifest says {}", got.path, got.size, want.size));
        }
        if want.sha256 != got.sha256 {
            return bad(format!("{}: sha256 differs from the manifest (the content was changed)", got.path));
        }
    }
    if let Some(missing) = m.entries.get(seen.len()) {
        return bad(format!("{} is in the manifest but not in the archive", missing.path));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            format: FORMAT,
            product: PRODUCT.into(),
            instance: "t".into(),
            vikunja_version: "v1.0.0".into(),
            created: "2026-01-01T00:00:00Z".into(),
            database: "sqlite".into(),
            database_entry: "database/vikunja.sqlite".into(),
            colour: "blue".into(),
            include_logs: false,
            installer_version: "0.0.0".into(),
        }
    }

    fn sample() -> Vec<u8> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("archive-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a.txt"), b"alpha").unwrap();
        fs::write(dir.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
        let mut w = Writer::new(Vec::new(), header()).unwrap();
        let mut skipped = Vec::new();
        w.add_tree("files", &dir, &|_, _| false, &mut skipped).unwrap();
        let (tar, m) = w.finish().unwrap();
        assert_eq!(m.files(), 3, "header, a.txt, sub/b.bin");
        let _ = fs::remove_dir_all(&dir);
        tar
    }

    fn verify(tar: &[u8]) -> Result<Manifest, ArchiveError> {
        read(tar, None, &mut |_| Ok(()))
    }

    #[test]
    fn a_written_archive_verifies_and_unpacks_identically() {
        let tar = sample();
        let m = verify(&tar).unwrap();
        assert_eq!(m.data_bytes(), m.entries[0].size + 5 + 100_000);
        let dest = std::env::temp_dir().join(format!("archive-test-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dest);
        fs::create_dir_all(&dest).unwrap();
        read(&tar[..], Some(&dest), &mut |_| Ok(())).unwrap();
        assert_eq!(fs::read(dest.join("files/a.txt")).unwrap(), b"alpha");
        assert_eq!(fs::read(dest.join("files/sub/b.bin")).unwrap(), vec![7u8; 100_000]);
        fs::remove_dir_all(&dest).unwrap();
    }

    #[test]
    fn changed_content_truncation_and_a_refusing_check_are_errors() {
        let tar = sample();
        let pos = tar.windows(5).position(|w| w == b"alpha").unwrap();
        let mut changed = tar.clone();
        changed[pos] = b'A';
        assert!(matches!(verify(&changed), Err(ArchiveError::Mismatch(m)) if m.contains("files/a.txt")));
        let cut = &tar[..tar.len() - 3000];
        assert!(verify(cut).is_err(), "a truncated archive verified");
        let refused = read(&tar[..], None, &mut |_| Err(Failed { code: manifests::Exit::Usage, message: "no".into() }));
        assert!(matches!(refused, Err(ArchiveError::Refused(_))));
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert_eq!(safe_relative(Path::new("files/a")).as_deref(), Some("files/a"));
        for bad in ["../x", "/etc/passwd", "files/../../x", "./files/a"] {
            assert_eq!(safe_relative(Path::new(bad)), None, "{bad}");
        }
    }
}
