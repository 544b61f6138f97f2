//! `vikunja dump` and `vikunja restore`, after `pkg/modules/dump`.
//!
//! Both return `Err(message)`; the CLI logs it at error level and still exits
//! 0, which is Vikunja's `log.Critical` quirk (vikunja.md §3.1). A caller
//! must check the zip, or the restored data, itself.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use zip::write::SimpleFileOptions;

use crate::config::Config;
use crate::db::{self, Db};
use crate::logger;
use crate::version::SemVer;

type Row = Map<String, Value>;

/// Vikunja formats the default name with Go's layout
/// `2006-01-02_15-03-05`: 24-hour hour, then the 12-hour hour (not the
/// minutes), then seconds. Kept, since a tool that predicts or parses the
/// name meets exactly this.
pub fn default_filename() -> String {
    let t = logger::now_local();
    let h12 = match t.hour % 12 {
        0 => 12,
        h => h,
    };
    format!("vikunja-dump_{:04}-{:02}-{:02}_{:02}-{:02}-{:02}.zip", t.year, t.month, t.day, t.hour, h12, t.second)
}

/// Writes the dump to `target`. The zip is finished even after an error, as
/// Go's deferred `Close` does, so a failed dump can leave a partial file.
pub fn dump(config: &Config, db: &Db, version: &str, target: &Path) -> Result<(), String> {
    let file = File::create(target).map_err(|e| format!("error opening dump file: {e}"))?;
    let mut zip = zip::ZipWriter::new(file);
    let result = write_entries(&mut zip, config, db, version);
    let finished = zip.finish().map(|_| ()).map_err(|e| format!("error closing dump file: {e}"));
    result.and(finished)?;
    logger::info("Done creating dump");
    logger::info(&format!("Dump file saved at {}", target.display()));
    Ok(())
}

fn write_entries(zip: &mut zip::ZipWriter<File>, config: &Config, db: &Db, version: &str) -> Result<(), String> {
    let t = logger::now_local();
    let mut opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    // Go stamps entries with the current time; without this they read 1980.
    if let Ok(when) = zip::DateTime::from_date_and_time(
        t.year as u16,
        t.month as u8,
        t.day as u8,
        t.hour as u8,
        t.minute as u8,
        t.second as u8,
    ) {
        opts = opts.last_modified_time(when);
    }
    let mut put = |name: &str, data: &[u8]| -> Result<(), String> {
        zip.start_file(name, opts)
            .and_then(|_| Ok(zip.write_all(data)?))
            .map_err(|e| format!("error writing {name}: {e}"))
    };

    logger::info("Start dumping config file...");
    match &config.file_used {
        Some(path) => {
            let data = std::fs::read(path).map_err(|e| format!("error saving config file: {e}"))?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config.yml".into());
            put(&name, &data)?;
        }
        None => logger::warn(
            "No config file found, not including one in the dump. This usually happens when environment variables are used for configuration.",
        ),
    }
    logger::info("Dumped config file");

    // Every variable whose name contains VIKUNJA_ (secrets included), as
    // Vikunja's `strings.Contains(e, "VIKUNJA_")` picks them.
    let dot_env: String = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, v)| format!("{k}={v}").contains("VIKUNJA_"))
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    if !dot_env.is_empty() {
        put(".env", dot_env.as_bytes())?;
        logger::info("Dumped .env file");
    }

    logger::info("Start dumping version file...");
    put("VERSION", version.as_bytes())?;
    logger::info("Dumped version");

    logger::info("Start dumping database...");
    for table in db.tables().map_err(|e| format!("error saving database data: {e}"))? {
        let rows = db.dump_table(&table).map_err(|e| format!("error saving database data: {e}"))?;
        let json = serde_json::to_vec(&rows).map_err(|e| e.to_string())?;
        put(&format!("database/{table}.json"), &json)
            .map_err(|e| format!("error writing database table {table}: {e}"))?;
    }
    logger::info("Dumped database");

    logger::info("Start dumping files...");
    if db.tables().map_err(|e| e.to_string())?.iter().any(|t| t == "task_attachments") {
        for row in db.dump_table("task_attachments").map_err(|e| format!("error saving file: {e}"))? {
            let id = row.get("id").and_then(Value::as_i64).ok_or("attachment without id")?;
            let data = std::fs::read(config.files_basepath.join(id.to_string()))
                .map_err(|e| format!("error saving file: file {id}: {e}"))?;
            put(&format!("files/{id}"), &data)?;
        }
    }
    logger::info("Dumped files");
    Ok(())
}

/// Each prompt gets a fresh 4 KiB buffered reader on fd 0, dropped after one
/// line — what Go's `bufio.NewReader(os.Stdin)` per prompt does. Input piped
/// in one go is therefore swallowed by the first prompt, and a second prompt
/// (config or .env confirmation) reads EOF. That is why scripted restores
/// need `--preserve-config`.
fn read_line_go_style() -> Result<String, String> {
    // SAFETY: fd 0 stays open for the whole process; ManuallyDrop keeps this
    // File from closing it.
    let stdin = ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let mut reader = BufReader::with_capacity(4096, &*stdin);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    if !line.ends_with('\n') {
        return Err("EOF".into());
    }
    Ok(line)
}

struct DumpContents {
    config: Option<(String, Vec<u8>)>,
    dot_env: Option<String>,
    version: Option<String>,
    tables: Vec<(String, Vec<u8>)>,
    files: Vec<(String, Vec<u8>)>,
}

fn read_zip(path: &Path) -> Result<DumpContents, String> {
    let f = File::open(path).map_err(|e| format!("could not open zip file: {e}"))?;
    let mut zip = zip::ZipArchive::new(f).map_err(|e| format!("could not open zip file: {e}"))?;
    let mut out = DumpContents { config: None, dot_env: None, version: None, tables: Vec::new(), files: Vec::new() };
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| format!("could not read zip entry: {e}"))?;
        let name = entry.name().map_err(|e| format!("could not read zip entry name: {e}"))?.into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| format!("could not read {name}: {e}"))?;
        if name.starts_with("config") {
            out.config = Some((name, data));
        } else if let Some(t) = name.strip_prefix("database/") {
            out.tables.push((t.trim_end_matches(".json").to_owned(), data));
        } else if name == ".env" {
            out.dot_env = Some(String::from_utf8_lossy(&data).into_owned());
        } else if let Some(id) = name.strip_prefix("files/") {
            out.files.push((id.to_owned(), data));
        } else if name == "VERSION" {
            out.version = Some(String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok(out)
}

fn check_version(dumped: Option<&str>, running: &str) -> Result<(), String> {
    let dumped = dumped.ok_or("dump does not contain VERSION file, refusing to continue")?;
    if dumped == "dev" && running == "dev" {
        return Ok(());
    }
    let parse = |s: &str| SemVer::parse(s).ok_or_else(|| format!("Malformed version: {s}"));
    let (d, r) = (parse(dumped)?, parse(running)?);
    if d != r {
        return Err(format!(
            "export was created with version {} but this is {} - please make sure you are running the same Vikunja version before restoring",
            d.plain(),
            r.plain()
        ));
    }
    Ok(())
}

/// Restores `zip_path` into the (already initialised and migrated) database.
pub fn restore(
    config: &Config,
    db: &Db,
    version: &str,
    zip_path: &Path,
    preserve_config: bool,
    shipped: &[&'static db::Migration],
) -> Result<(), String> {
    let contents = read_zip(zip_path)?;

    logger::warn("Restoring a dump will wipe your current installation!");
    logger::warn("To confirm, please type 'Yes, I understand' and confirm with enter:");
    let answer = read_line_go_style().map_err(|e| format!("could not read confirmation message: {e}"))?;
    if answer != "Yes, I understand\n" {
        return Err("invalid confirmation message".into());
    }

    check_version(contents.version.as_deref(), version)?;

    if !preserve_config {
        restore_config(&contents)?;
    }
    logger::info("Restoring...");

    db.wipe().map_err(|e| format!("could not wipe database: {e}"))?;
    logger::info("Wiped database.");

    // The dump has no table definitions: rebuild the schema as it was by
    // running migrations up to the last one the dump recorded.
    let (_, migrations_json) =
        contents.tables.iter().find(|(t, _)| t == "migration").ok_or("dump has no database/migration.json")?;
    let recorded: Vec<Row> =
        serde_json::from_slice(migrations_json).map_err(|e| format!("could not read migrations: {e}"))?;
    let last = recorded.iter().filter_map(|r| r.get("id").and_then(Value::as_str)).max().unwrap_or("").to_owned();
    let upto: Vec<&db::Migration> = shipped.iter().copied().filter(|m| m.id <= last.as_str()).collect();
    db.migrate(&upto, false).map_err(|e| format!("could not create db structure: {e}"))?;

    let mut restored = 0;
    for (table, data) in contents.tables.iter().filter(|(t, _)| t != "migration") {
        let rows: Vec<Row> = serde_json::from_slice(data).map_err(|e| format!("could not read table {table}: {e}"))?;
        db.restore_table(table, &rows).map_err(|e| format!("could not restore table data for table {table}: {e}"))?;
        logger::info(&format!("Restored table {table}"));
        restored += 1;
    }
    logger::info(&format!("Restored {restored} tables"));

    // Migrate a dump from before the newest migrations of this release.
    // Vikunja's `migration.Migrate` is fatal on failure here too.
    if let Err(e) = db.migrate(shipped, false) {
        logger::fatal(&format!("Migration failed: {e}"));
    }

    std::fs::create_dir_all(&config.files_basepath).map_err(|e| format!("could not save file: {e}"))?;
    for (id, data) in &contents.files {
        let id: i64 = id.parse().map_err(|e| format!("could not parse file id {id}: {e}"))?;
        std::fs::write(config.files_basepath.join(id.to_string()), data)
            .map_err(|e| format!("could not save file: {e}"))?;
        logger::info(&format!("Restored file {id}"));
    }
    logger::info(&format!("Restored {} files.", contents.files.len()));
    logger::info("Done restoring dump.");
    logger::info("Restart Vikunja to make sure the new configuration file is applied.");
    Ok(())
}

/// Without `--preserve-config`: the dumped config file is written to the
/// current directory under its own name, or the dumped `.env` is shown; in
/// both cases the operator must press enter (a second stdin read).
fn restore_config(contents: &DumpContents) -> Result<(), String> {
    if let Some((name, data)) = &contents.config {
        let target = PathBuf::from(name);
        std::fs::write(&target, data).map_err(|e| format!("could not open config file for writing: {e}"))?;
        logger::info(&format!("The config file has been restored to '{name}'."));
        logger::info("You can now make changes to it, hit enter when you're done.");
        read_line_go_style().map_err(|e| format!("could not read from stdin: {e}"))?;
        return Ok(());
    }
    logger::warn("No config file found, not restoring one.");
    logger::warn("You'll likely have had Vikunja configured through environment variables.");
    if let Some(env) = &contents.dot_env {
        logger::warn(&format!(
            "Please make sure the following settings are properly configured in your instance:\n{env}"
        ));
        logger::warn(
            "Make sure your current config matches the following env variables, confirm by pressing enter when done.",
        );
        logger::warn("If your config does not match, you'll have to make the changes and restart the restoring process afterwards.");
        read_line_go_style().map_err(|e| format!("could not read from stdin: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_check() {
        assert!(check_version(Some("v2.5.0"), "v2.5.0").is_ok());
        let e = check_version(Some("v2.4.0"), "v2.5.0").unwrap_err();
        assert!(e.contains("export was created with version 2.4.0 but this is 2.5.0"), "{e}");
        assert!(e.contains("please make sure you are running the same Vikunja version before restoring"));
        assert!(check_version(None, "v2.5.0").unwrap_err().contains("VERSION"));
    }

    #[test]
    fn filename_shape() {
        let n = default_filename();
        let stamp = n.strip_prefix("vikunja-dump_").and_then(|s| s.strip_suffix(".zip")).unwrap();
        assert_eq!(stamp.len(), "2006-01-02_15-03-05".len());
        assert!(stamp.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 | 13 | 16 => b == b'-',
            10 => b == b'_',
            _ => b.is_ascii_digit(),
        }));
    }
}
