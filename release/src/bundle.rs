//! Reproducible installer bundles: the same inputs and `SOURCE_DATE_EPOCH` give identical bytes.
//! Entries are sorted, owners are 0/0 with empty names, modes are 0755 or 0644, every mtime is the
//! epoch given, and the gzip header carries no name or time.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file to put into the bundle at `dest` (a relative path with `/` separators).
pub struct BundleFile {
    pub dest: String,
    pub source: PathBuf,
}

/// Every regular file under `dir`, to be placed under `prefix` in the bundle.
pub fn files_under(dir: &Path, prefix: &str) -> io::Result<Vec<BundleFile>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                let rel = path.strip_prefix(dir).map_err(io::Error::other)?;
                let rel = rel.to_str().ok_or_else(|| io::Error::other(format!("non-UTF-8 path {}", path.display())))?;
                out.push(BundleFile { dest: format!("{prefix}/{rel}"), source: path });
            } else {
                return Err(io::Error::other(format!("{}: only regular files go into a bundle", path.display())));
            }
        }
    }
    Ok(out)
}

fn header(path: &str, mode: u32, size: u64, ty: tar::EntryType, mtime: u64) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_username("")?;
    h.set_groupname("")?;
    h.set_cksum();
    Ok(h)
}

/// Writes a `.tar.gz` of `files` (directories are created implicitly) to `out`.
pub fn write_bundle(mut files: Vec<BundleFile>, mtime: u64, out: impl Write) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    files.sort_by(|a, b| a.dest.cmp(&b.dest));
    let gz = flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut dirs_done: Vec<String> = Vec::new();
    for f in &files {
        let parts: Vec<&str> = f.dest.split('/').collect();
        for i in 1..parts.len() {
            let dir = format!("{}/", parts[..i].join("/"));
            if !dirs_done.contains(&dir) {
                tar.append(&header(&dir, 0o755, 0, tar::EntryType::Directory, mtime)?, io::empty())?;
                dirs_done.push(dir);
            }
        }
        let meta = std::fs::metadata(&f.source)?;
        let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
        let data = std::fs::File::open(&f.source)?;
        tar.append(&header(&f.dest, mode, meta.len(), tar::EntryType::Regular, mtime)?, data)?;
    }
    tar.into_inner()?.finish()?.flush()
}
