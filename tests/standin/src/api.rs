//! The HTTP routes: `/health`, `/api/v1/info`, the frontend page and a
//! small task/attachment API.
//!
//! The task API has NO authentication, unlike Vikunja's: it exists so tests
//! can prove that data written through one release survives an upgrade,
//! a dump/restore or a blue-green switch, not to model Vikunja's users.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::db::{self, Db, Param};
use crate::faults::Fault;
use crate::http::{Request, Response};
use crate::logger;
use crate::version::SemVer;

pub struct App {
    pub version: String,
    pub config: Config,
    pub db: Arc<Db>,
    pub fault: Fault,
    /// Ids of the migrations this release ships: they decide which columns
    /// and routes exist, as the code of a real release would.
    pub shipped: Vec<&'static str>,
}

const INDEX_HTML: &str = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>Vikunja</title>\n</head>\n<body>\n<noscript>We're sorry but Vikunja doesn't work properly without JavaScript enabled.</noscript>\n\
<div id=\"app\"></div>\n<!-- vikunja-standin: a TEST DOUBLE of Vikunja, not Vikunja -->\n</body>\n</html>\n";

impl App {
    fn has(&self, migration: &str) -> bool {
        self.shipped.contains(&migration)
    }

    pub fn handle(&self, req: &Request) -> Response {
        let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let get = matches!(req.method.as_str(), "GET" | "HEAD");
        let put = req.method == "PUT";
        let route = match segs.as_slice() {
            ["health"] => get.then(|| self.health()),
            [""] => get.then(|| Response {
                status: 200,
                content_type: "text/html; charset=UTF-8".into(),
                body: INDEX_HTML.into(),
            }),
            ["api", "v1", "info"] => get.then(|| self.info()),
            ["api", "v1", "projects", id, "tasks"] => put.then(|| self.create_task(id, req)),
            ["api", "v1", "tasks", "all"] => get.then(|| self.list_tasks()),
            ["api", "v1", "tasks", id, "attachments"] if self.has(db::ATTACHMENTS) => put.then(|| self.upload(id, req)),
            ["api", "v1", "tasks", id, "attachments", aid] if self.has(db::ATTACHMENTS) => {
                get.then(|| self.download(id, aid))
            }
            _ => return Response::message(404, "Not Found"),
        };
        route.unwrap_or_else(|| Response::message(405, "Method Not Allowed"))
    }

    fn health(&self) -> Response {
        if self.fault == Fault::NeverHealthy {
            return Response::text(500, "fault never-healthy injected by the stand-in");
        }
        match self.db.ping() {
            Ok(()) => Response::text(200, "OK"),
            Err(e) => {
                logger::error(&format!("Health check failed: {e}"));
                Response::text(500, &e)
            }
        }
    }

    /// The field set of `pkg/routes/api/shared/info.go`; releases before
    /// 1.0.0 had the older set described in vikunja.md §3.3.
    fn info(&self) -> Response {
        let c = &self.config;
        let modern = SemVer::parse(&self.version).is_none_or(|v| v >= SemVer::parse("1.0.0-rc0").expect("literal"));
        let mut v = json!({
            "version": self.version,
            "frontend_url": c.public_url,
            "motd": c.motd,
            "link_sharing_enabled": c.link_sharing,
            "max_file_size": c.max_size,
            "available_migrators": [],
            "task_attachments_enabled": true,
            "enabled_background_providers": ["upload"],
            "totp_enabled": true,
            "legal": { "imprint_url": "", "privacy_policy_url": "" },
            "caldav_enabled": true,
            "auth": {
                "local": { "enabled": true, "registration_enabled": c.registration },
                "openid_connect": { "enabled": false, "providers": [] }
            },
            "email_reminders_enabled": false,
            "user_deletion_enabled": true,
            "task_comments_enabled": true,
            "demo_mode_enabled": false,
            "webhooks_enabled": true,
            "public_teams_enabled": false,
        });
        let obj = v.as_object_mut().expect("object literal");
        if modern {
            obj.insert("max_items_per_page".into(), 50.into());
            obj.insert("allow_icon_changes".into(), true.into());
            obj.insert("enabled_pro_features".into(), json!([]));
            // "overlapping write transactions deadlock" on SQLite.
            obj.insert("concurrent_writes".into(), (!self.db.is_sqlite).into());
            obj["auth"]["ldap"] = json!({ "enabled": false });
        } else {
            obj.insert("registration_enabled".into(), c.registration.into());
        }
        Response::json(200, &v)
    }

    fn task_columns(&self) -> Vec<&'static str> {
        let mut cols = vec!["id", "title", "project_id", "created"];
        for (m, col) in
            [(db::TASK_DONE, "done"), (db::TASK_PRIORITY, "priority"), (db::TASK_DESCRIPTION, "description")]
        {
            if self.has(m) {
                cols.push(col);
            }
        }
        cols
    }

    fn task_json(cols: &[&str], row: &[db::Cell]) -> Value {
        let mut m = Map::new();
        for (c, cell) in cols.iter().zip(row) {
            let v = match *c {
                "done" => cell.bool().into(),
                "id" | "project_id" | "priority" => cell.int().into(),
                _ => cell.text().into(),
            };
            m.insert((*c).into(), v);
        }
        Value::Object(m)
    }

    fn create_task(&self, project: &str, req: &Request) -> Response {
        let Ok(project_id) = project.parse::<i64>() else {
            return Response::message(400, "Invalid project id");
        };
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Response::message(400, "Invalid model provided."),
        };
        let title = body["title"].as_str().unwrap_or("").trim().to_owned();
        if title.is_empty() {
            return Response::message(400, "Invalid model provided: title is required");
        }
        let mut cols = vec!["title", "project_id", "created"];
        let mut params = vec![Param::Text(title), Param::Int(project_id), Param::Text(logger::timestamp())];
        if let (true, Some(done)) = (self.has(db::TASK_DONE), body["done"].as_bool()) {
            cols.push("done");
            params.push(Param::Bool(done));
        }
        if let (true, Some(p)) = (self.has(db::TASK_PRIORITY), body["priority"].as_i64()) {
            cols.push("priority");
            params.push(Param::Int(p));
        }
        if let (true, Some(d)) = (self.has(db::TASK_DESCRIPTION), body["description"].as_str()) {
            cols.push("description");
            params.push(Param::Text(d.into()));
        }
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let out = self.task_columns();
        let insert = format!(
            "INSERT INTO tasks ({}) VALUES ({}) RETURNING {}",
            cols.join(", "),
            marks.join(", "),
            out.join(", ")
        );
        match self.db.tx(|c| c.query(&insert, &params)) {
            Ok(rows) if rows.rows.len() == 1 => Response::json(201, &Self::task_json(&out, &rows.rows[0])),
            Ok(_) => Response::message(500, "insert returned no row"),
            Err(e) => internal(&e),
        }
    }

    fn list_tasks(&self) -> Response {
        let cols = self.task_columns();
        match self.db.with(|c| c.query(&format!("SELECT {} FROM tasks ORDER BY id", cols.join(", ")), &[])) {
            Ok(rows) => {
                Response::json(200, &Value::Array(rows.rows.iter().map(|r| Self::task_json(&cols, r)).collect()))
            }
            Err(e) => internal(&e),
        }
    }

    fn file_path(&self, id: i64) -> PathBuf {
        self.config.files_basepath.join(id.to_string())
    }

    fn upload(&self, task: &str, req: &Request) -> Response {
        let Ok(task_id) = task.parse::<i64>() else {
            return Response::message(400, "Invalid task id");
        };
        let ct = req.header("content-type").unwrap_or("");
        let (name, data) = match multipart_file(ct, &req.body, "files") {
            Ok(f) => f,
            Err(e) => return Response::message(400, &format!("No file provided: {e}")),
        };
        if data.len() as u64 > self.config.max_body_bytes {
            return Response::message(413, "The file is too big.");
        }
        let exists = self.db.with(|c| c.query("SELECT id FROM tasks WHERE id = $1", &[Param::Int(task_id)]));
        match exists {
            Ok(r) if r.rows.is_empty() => return Response::message(404, "This task does not exist."),
            Ok(_) => {}
            Err(e) => return internal(&e),
        }
        // The row and the file are written inside one transaction, so a 201
        // means both are durable and a failure leaves neither behind.
        let mut written: Option<PathBuf> = None;
        let res = self.db.tx(|c| {
            let rows = c.query(
                "INSERT INTO task_attachments (task_id, file_name, size, created) VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    Param::Int(task_id),
                    Param::Text(name.clone()),
                    Param::Int(data.len() as i64),
                    Param::Text(logger::timestamp()),
                ],
            )?;
            let id = rows.rows.first().map(|r| r[0].int()).ok_or("insert returned no id")?;
            let path = self.file_path(id);
            write_durably(&path, &data).map_err(|e| format!("saving {}: {e}", path.display()))?;
            written = Some(path);
            Ok(id)
        });
        match res {
            Ok(id) => Response::json(
                201,
                &json!({ "id": id, "task_id": task_id, "file": { "id": id, "name": name, "size": data.len() } }),
            ),
            Err(e) => {
                if let Some(p) = written {
                    let _ = std::fs::remove_file(p);
                }
                internal(&e)
            }
        }
    }

    fn download(&self, task: &str, attachment: &str) -> Response {
        let (Ok(task_id), Ok(id)) = (task.parse::<i64>(), attachment.parse::<i64>()) else {
            return Response::message(400, "Invalid id");
        };
        let found = self.db.with(|c| {
            c.query(
                "SELECT id FROM task_attachments WHERE id = $1 AND task_id = $2",
                &[Param::Int(id), Param::Int(task_id)],
            )
        });
        match found {
            Ok(r) if r.rows.is_empty() => Response::message(404, "This task attachment does not exist."),
            Ok(_) => match std::fs::read(self.file_path(id)) {
                Ok(body) => Response { status: 200, content_type: "application/octet-stream".into(), body },
                Err(e) => internal(&format!("reading attachment {id}: {e}")),
            },
            Err(e) => internal(&e),
        }
    }
}

fn internal(e: &str) -> Response {
    logger::error(e);
    Response::message(500, "Internal Server Error")
}

/// Temp file, fsync, rename, fsync the directory: the file exists in full or
/// not at all, even across a crash right after the response.
fn write_durably(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("file path has a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".upload-{}-{:?}", std::process::id(), std::thread::current().id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The first part named `field` that carries a filename, from a
/// `multipart/form-data` body: (filename, bytes).
pub fn multipart_file(content_type: &str, body: &[u8], field: &str) -> Result<(String, Vec<u8>), String> {
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        return Err("expected multipart/form-data".into());
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim_matches('"').to_owned())
        .ok_or("no boundary")?;
    let delim = format!("--{boundary}").into_bytes();
    let next_delim = format!("\r\n--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);

    let mut rest = &body[find(body, &delim).ok_or("no opening boundary")? + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Err(format!("no file in field {field:?}"));
        }
        rest = rest.strip_prefix(b"\r\n").ok_or("malformed part")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("malformed part headers")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, &next_delim).ok_or("unterminated part")?;
        let disposition = head
            .split("\r\n")
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition")))
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default();
        let param = |name: &str| {
            disposition
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim_matches('"').to_owned())
        };
        if let (Some(n), Some(filename)) = (param("name"), param("filename")) {
            if n == field {
                // Keep only the last path component a browser might send.
                let filename = filename.rsplit(['/', '\\']).next().unwrap_or("").to_owned();
                return Ok((filename, content[..end].to_vec()));
            }
        }
        rest = &content[end + next_delim.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"files\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\
\x00\r\n--Xy\xff\r\n--XyZ--\r\n";
        let (name, data) = multipart_file("multipart/form-data; boundary=XyZ", body, "files").unwrap();
        assert_eq!(name, "a.bin");
        assert_eq!(data, b"\x00\r\n--Xy\xff");
        assert!(multipart_file("multipart/form-data; boundary=XyZ", body, "nope").is_err());
        assert!(multipart_file("application/json", body, "files").is_err());
    }
}
