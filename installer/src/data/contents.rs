//! What a backup holds of an instance and where a named backup is: shared by `backup`, which
//! writes them, and `restore`, which puts them back and must leave the same things alone.

use std::path::{Path, PathBuf};

use crate::instance::layout::Layout;

fn is_temp(rel: &Path) -> bool {
    let name = rel.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.starts_with('.') && (name.contains(".tmp-") || name.contains(".partial") || name.starts_with(".mysql-client-"))
}

/// Files under `config/` that belong to this machine's nginx, not to the settings: the private
/// nginx of `--init process` (its main file is rendered for the init mode, so a backup from a
/// systemd machine restores onto a process one and back), its pid and scratch directories.
pub fn skip_config(rel: &Path, _is_dir: bool) -> bool {
    let s = rel.to_string_lossy();
    matches!(s.as_ref(), "nginx/nginx.conf" | "nginx/nginx.pid" | "nginx/tmp" | "nginx/logs") || is_temp(rel)
}

/// State that describes this machine or an operation in progress, never the deployment: locks,
/// journals, caches, nginx's temp files and what it last applied, the init mode, Debian's default
/// site put aside, a `stop`.
pub fn skip_state(rel: &Path, _is_dir: bool) -> bool {
    let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    matches!(
        top.as_str(),
        "locks"
            | "journal"
            | "restore-journal"
            | "backup-journal"
            | "rollback-point"
            | "nginx-temp"
            | "nginx-applied-upstream.conf"
            // The write freeze's flag: a restore swapping it away would lift the freeze it runs under.
            | "writes-frozen"
            | "health-cache.json"
            // The machine's counters and metrics (issue 17), not the instance's: a restore must not
            // turn `_total` counters back.
            | "observe"
            | "metrics.prom"
            | "init"
            | "nginx-default-site.disabled"
            // Whether the services run here now (`stop`): a restored instance runs.
            | "stopped"
    ) || is_temp(rel)
}

/// Supervisor pid files live beside the logs; they name processes of this machine only.
pub fn skip_logs(rel: &Path, is_dir: bool) -> bool {
    !is_dir && rel.extension().is_some_and(|e| e == "pid")
}

/// A backup named without a directory is looked for in the instance's backup directory too.
pub fn resolve(file: &Path, l: Option<&Layout>) -> PathBuf {
    if file.exists() || file.components().count() > 1 {
        return file.to_path_buf();
    }
    match l {
        Some(l) if l.backups_dir().join(file).exists() => l.backups_dir().join(file),
        _ => file.to_path_buf(),
    }
}
