//! `update`: a new Vikunja release on the idle colour, through the blue-green steps of `switch`.

use std::path::Path;

use anyhow::Result;
use manifests::Exit;

use crate::engine::recovery;
use crate::engine::switch::{refuse_unsupported, switch_locked, Offline};
use crate::error::fail;
use crate::instance::Instance;

pub fn update(inst: &Instance, version: Option<&str>, artifact: Option<&Path>, sha256: Option<&str>) -> Result<()> {
    if artifact.is_some() && version.is_none() {
        return Err(fail(
            Exit::Usage,
            "--artifact needs --version: name the release the zip holds (e.g. --version v2.5.0); nothing was changed",
        ));
    }
    if let Some(v) = version {
        refuse_unsupported(v)?;
    }
    let begun = recovery::begin(inst, "update")?;
    switch_locked(&begun.inst, version, "update", Offline { artifact, sha256 }, None)
}
