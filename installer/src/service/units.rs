//! The services of an instance as unit files: the backend and (optionally) the MCP server, one per
//! colour. The same rendered file is installed into systemd or run by the process supervisor, so
//! both init modes start exactly the same command with the same environment.

use std::path::PathBuf;

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;
use crate::instance::state::Colour;
use crate::render::templates::TemplateError;
use crate::render::{render_unit, RenderError, ServiceSpec};

/// A colour's units could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Render(#[from] RenderError),
}

pub const SERVICE_USER: &str = "vikunja";

pub fn backend_port(d: &Deployment, c: Colour) -> u16 {
    match c {
        Colour::Blue => d.ports.backend_blue,
        Colour::Green => d.ports.backend_green,
    }
}

pub fn mcp_port(d: &Deployment, c: Colour) -> u16 {
    match c {
        Colour::Blue => d.ports.mcp_blue,
        Colour::Green => d.ports.mcp_green,
    }
}

pub fn backend_spec(l: &Layout, d: &Deployment, c: Colour, version: &str) -> ServiceSpec {
    let mut env = vec![
        ("VIKUNJA_SERVICE_INTERFACE".to_string(), format!("127.0.0.1:{}", backend_port(d, c))),
        ("VIKUNJA_SERVICE_ROOTPATH".to_string(), l.config_dir().to_string_lossy().into_owned()),
        ("VIKUNJA_SERVICE_SECRET_FILE".to_string(), l.service_secret_file().to_string_lossy().into_owned()),
    ];
    if d.database.kind != DbType::Sqlite {
        env.push(("VIKUNJA_DATABASE_PASSWORD_FILE".into(), l.db_password_file().to_string_lossy().into_owned()));
    }
    ServiceSpec {
        unit: l.unit_name("backend", c.name()),
        description: format!("Vikunja backend {version} (instance {}, {})", d.instance.name, c.name()),
        exec: vec![crate::instance::artifact::binary_path(l, version).to_string_lossy().into_owned(), "web".into()],
        working_dir: l.data_dir(),
        user: SERVICE_USER.into(),
        group: SERVICE_USER.into(),
        env,
        read_write_paths: vec![l.data_dir(), l.logs_dir()],
        kill_signal: "SIGINT".into(),
        stop_timeout_s: 20,
        restart_sec: 5,
    }
}

pub fn mcp_spec(l: &Layout, d: &Deployment, c: Colour) -> ServiceSpec {
    let port = mcp_port(d, c).to_string();
    let api = format!("http://127.0.0.1:{}/api/v1", backend_port(d, c));
    let venv = crate::instance::mcp::venv_dir(l, &d.components).to_string_lossy().into_owned();
    // The server reads its API token only from VIKUNJA_TOKEN, and a unit file is world-readable:
    // a shell reads the 0600 copy into the environment and then becomes the command.
    let mut exec: Vec<String> = vec![
        "/bin/sh".into(),
        "-c".into(),
        "VIKUNJA_TOKEN=$(cat \"$VIKUNJA_TOKEN_FILE\") || exit 1; export VIKUNJA_TOKEN; exec \"$@\"".into(),
        "vikunja-mcp".into(),
    ];
    exec.extend(
        d.components
            .mcp_command
            .iter()
            .map(|a| a.replace("{port}", &port).replace("{api_url}", &api).replace("{venv}", &venv)),
    );
    let token = crate::instance::mcp::api_token_file(l).to_string_lossy().into_owned();
    ServiceSpec {
        unit: l.unit_name("mcp", c.name()),
        description: format!("Vikunja MCP server (instance {}, {})", d.instance.name, c.name()),
        exec,
        working_dir: l.data_dir(),
        user: SERVICE_USER.into(),
        group: SERVICE_USER.into(),
        env: vec![("PORT".into(), port), ("VIKUNJA_URL".into(), api), ("VIKUNJA_TOKEN_FILE".into(), token)],
        read_write_paths: vec![l.logs_dir()],
        kill_signal: "SIGINT".into(),
        stop_timeout_s: 20,
        restart_sec: 5,
    }
}

/// The unit files of one colour: (unit name, rendered text).
pub fn render_colour(l: &Layout, d: &Deployment, c: Colour, version: &str) -> Result<Vec<(String, String)>, UnitError> {
    let template = crate::render::templates::load("systemd/service.tmpl")?;
    let mut specs = vec![backend_spec(l, d, c, version)];
    if d.components.mcp {
        specs.push(mcp_spec(l, d, c));
    }
    specs.into_iter().map(|s| Ok(render_unit(&template, &s).map(|t| (s.unit.clone(), t))?)).collect()
}

pub fn unit_file(l: &Layout, unit: &str) -> PathBuf {
    l.units_dir().join(format!("{unit}.service"))
}
