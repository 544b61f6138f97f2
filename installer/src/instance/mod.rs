//! One instance's files and settings, and (`open`) finding an installed instance with its
//! settings and how it is run. Knows nothing of operations, commands or the host.

pub mod account;
pub mod artifact;
pub mod config;
pub mod layout;
pub mod lock;
pub mod mcp;
pub mod observe;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod tls;
pub mod update_policy;
pub mod update_state;
pub mod vikunja_conf;

use anyhow::Result;

use crate::error::Failed;
use crate::instance::config::Deployment;
use crate::instance::layout::{installed_instances, Layout};
use crate::service::init::Init;

pub struct Instance {
    pub layout: Layout,
    pub deployment: Deployment,
    pub init: Init,
}

pub fn open(root: &std::path::Path, name: Option<&str>) -> Result<Instance> {
    let name = match name {
        Some(n) if Layout::new(root, n).deployment_file().is_file() => n.to_string(),
        // A typo must not read as a broken install (a missing deployment.toml): say what exists.
        Some(n) => {
            let all = installed_instances(root);
            let what = match all.as_slice() {
                [] => "no instance is installed here; `vikunja-installer install` makes one".to_string(),
                [one] => format!("the one installed here is {one}: use --instance {one}, or leave --instance out"),
                many => format!("installed here: {}; choose one with --instance NAME", many.join(", ")),
            };
            return Err(Failed {
                code: manifests::Exit::Usage,
                message: format!("no instance named {n} under {}: {what}", root.display()),
            }
            .into());
        }
        None => {
            let all = installed_instances(root);
            match all.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(Failed {
                        code: manifests::Exit::Error,
                        message: format!(
                            "no Vikunja instance is installed under {}; run vikunja-installer install",
                            root.display()
                        ),
                    }
                    .into())
                }
                many => {
                    return Err(Failed {
                        code: manifests::Exit::Usage,
                        message: format!(
                            "several instances are installed ({}); choose one with --instance NAME",
                            many.join(", ")
                        ),
                    }
                    .into())
                }
            }
        }
    };
    let layout = Layout::new(root, &name);
    let deployment = Deployment::load(&layout.deployment_file())?;
    let init = std::fs::read_to_string(layout.state_dir().join("init")).unwrap_or_else(|_| "auto".into());
    let init = Init::choose(init.trim(), root)?;
    Ok(Instance { layout, deployment, init })
}
