//! The Vikunja release: `vikunja-<v>-linux-<arch>-full.zip` from the download site, a mirror or a
//! local file. The zip holds the binary, `<binary>.sha256` (`<hex>  <name>`) and
//! `config.yml.sample`; the binary must match that sha256, and the zip a pinned sha256 when the
//! config or an offline bundle gives one. Only those named entries are extracted, into
//! `releases/<version>/` through a temp directory renamed at the end.

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use manifests::hash::{sha256_reader, Sha256};

use crate::instance::config::{arch, Deployment};
use crate::instance::layout::Layout;
use crate::report::note;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Fetch(#[from] manifests::fetch::FetchError),
    #[error("{what}: {source}{}", hint(source))]
    Io { what: String, source: io::Error },
    #[error("{file}: not a Vikunja release zip ({why})")]
    NotARelease { file: String, why: String },
    #[error("{name}: sha256 is {found} but {expected} was expected ({source_of_truth}); the download is corrupt or tampered, nothing was installed")]
    Checksum { name: String, expected: String, found: String, source_of_truth: String },
}

impl ArtifactError {
    pub fn exit(&self) -> manifests::Exit {
        match self {
            ArtifactError::Fetch(e) => e.exit(),
            ArtifactError::Checksum { .. } | ArtifactError::NotARelease { .. } => manifests::Exit::Verification,
            ArtifactError::Io { .. } => manifests::Exit::Error,
        }
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::StorageFull => {
            "; free space on that disk (df -h) and run the command again: nothing was switched"
        }
        io::ErrorKind::PermissionDenied => "; run as root",
        _ => "",
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArtifactError {
    let what = what.into();
    move |source| ArtifactError::Io { what, source }
}

/// The binary inside `releases/<version>/`.
pub fn binary_path(l: &Layout, version: &str) -> PathBuf {
    l.release_dir(version).join(binary_name(version))
}

pub fn binary_name(version: &str) -> String {
    format!("vikunja-{version}-linux-{}", arch())
}

/// Makes sure `releases/<version>/` holds the verified binary; returns whether anything changed.
pub fn ensure_release(
    l: &Layout,
    d: &Deployment,
    fetcher: Option<&manifests::fetch::Fetcher>,
) -> Result<bool, ArtifactError> {
    let version = &d.vikunja.version;
    let dest = l.release_dir(version);
    let bin = binary_path(l, version);
    if bin.is_file() && dest.join(".verified").is_file() {
        return Ok(false);
    }
    fs::create_dir_all(l.releases_dir()).map_err(io_err(format!("create {}", l.releases_dir().display())))?;
    let zip_path = match &d.vikunja.artifact {
        Some(local) => local.clone(),
        None => {
            let url = d.artifact_url();
            let fetcher = fetcher.ok_or_else(|| ArtifactError::NotARelease {
                file: url.clone(),
                why: "no downloader available".into(),
            })?;
            let part = l.releases_dir().join(format!(".{}.partial", d.artifact_name()));
            let mut f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&part)
                .map_err(io_err(format!("create {}", part.display())))?;
            note!("downloading {url}");
            fetcher.download(&url, 512 * 1024 * 1024, &d.artifact_name(), &mut f)?;
            part
        }
    };
    let result = install_from_zip(&zip_path, d, &dest);
    if d.vikunja.artifact.is_none() {
        let _ = fs::remove_file(&zip_path);
    }
    if result.is_err() {
        // A half-unpacked release (disk full, a bad entry) must not take space or look installed.
        let _ = fs::remove_dir_all(dest.with_file_name(format!(".{version}.partial")));
    }
    result.map(|()| true)
}

fn install_from_zip(zip_path: &Path, d: &Deployment, dest: &Path) -> Result<(), ArtifactError> {
    let version = &d.vikunja.version;
    let shown = zip_path.display().to_string();
    let mut file = File::open(zip_path).map_err(io_err(format!("open {shown}")))?;
    if let Some(pinned) = &d.vikunja.sha256 {
        let (found, _) = sha256_reader(&mut file).map_err(io_err(format!("read {shown}")))?;
        if !found.eq_ignore_ascii_case(pinned) {
            return Err(ArtifactError::Checksum {
                name: shown,
                expected: pinned.to_lowercase(),
                found,
                source_of_truth: "vikunja.sha256 in the deployment config".into(),
            });
        }
        file.rewind().map_err(io_err(format!("rewind {shown}")))?;
    }
    let not_release = |why: String| ArtifactError::NotARelease { file: shown.clone(), why };
    let mut zip = zip::ZipArchive::new(file).map_err(|e| not_release(e.to_string()))?;
    let bin_name = binary_name(version);
    // Entries may sit at the top or inside one `<binary>-full/` folder.
    let find = |zip: &zip::ZipArchive<File>, name: &str| -> Option<usize> {
        (0..zip.len()).find(|&i| {
            zip.name_for_index(i).and_then(|r| r.ok()).is_some_and(|n| {
                n == name || n.rsplit_once('/').is_some_and(|(dir, base)| base == name && !dir.contains('/'))
            })
        })
    };
    let bin_idx = find(&zip, &bin_name)
        .ok_or_else(|| not_release(format!("no {bin_name} inside; wrong version or architecture?")))?;
    let sum_idx =
        find(&zip, &format!("{bin_name}.sha256")).ok_or_else(|| not_release(format!("no {bin_name}.sha256 inside")))?;
    let mut sum_text = String::new();
    zip.by_index(sum_idx)
        .map_err(|e| not_release(e.to_string()))?
        .take(4096)
        .read_to_string(&mut sum_text)
        .map_err(io_err("read the sha256 file"))?;
    let expected = sum_text
        .split_whitespace()
        .next()
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| not_release(format!("{bin_name}.sha256 does not start with a sha256")))?
        .to_lowercase();

    let tmp = dest.with_file_name(format!(".{version}.partial"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io_err(format!("create {}", tmp.display())))?;
    let out = tmp.join(&bin_name);
    {
        let mut entry = zip.by_index(bin_idx).map_err(|e| not_release(e.to_string()))?;
        let mut f = File::create(&out).map_err(io_err(format!("create {}", out.display())))?;
        let mut h = Sha256::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(io_err(format!("unzip {bin_name}")))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            io::Write::write_all(&mut f, &buf[..n]).map_err(io_err(format!("write {}", out.display())))?;
        }
        f.sync_all().map_err(io_err(format!("sync {}", out.display())))?;
        let found = h.finish_hex();
        if found != expected {
            let _ = fs::remove_dir_all(&tmp);
            return Err(ArtifactError::Checksum {
                name: bin_name,
                expected,
                found,
                source_of_truth: "the .sha256 file in the zip".into(),
            });
        }
    }
    fs::set_permissions(&out, fs::Permissions::from_mode(0o555)).map_err(io_err("chmod the binary"))?;
    for extra in ["config.yml.sample", "LICENSE"] {
        if let Some(i) = find(&zip, extra) {
            let mut e = zip.by_index(i).map_err(|e| not_release(e.to_string()))?;
            let mut f = File::create(tmp.join(extra)).map_err(io_err(format!("create {extra}")))?;
            io::copy(&mut e.by_ref().take(16 * 1024 * 1024), &mut f).map_err(io_err(format!("unzip {extra}")))?;
        }
    }
    fs::write(tmp.join(".verified"), format!("sha256: {expected}\n")).map_err(io_err("write .verified"))?;
    if dest.exists() {
        // An unverified leftover of an interrupted install: move it aside, never delete blindly.
        let aside = dest.with_file_name(format!(".{version}.replaced-{}", std::process::id()));
        fs::rename(dest, &aside).map_err(io_err(format!("move aside {}", dest.display())))?;
    }
    fs::rename(&tmp, dest).map_err(io_err(format!("rename into {}", dest.display())))?;
    let _ = fs::set_permissions(dest, fs::Permissions::from_mode(0o755));
    Ok(())
}
