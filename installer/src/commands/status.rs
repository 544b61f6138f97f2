//! `status`: the instance's screen (or JSON), once or every 10 s with `--watch`; exit 10 when
//! unhealthy.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use manifests::Exit;

use crate::cli;
use crate::engine::recovery;
use crate::instance;
use crate::service::status;

pub fn command(s: cli::Status) -> Result<ExitCode> {
    let inst = instance::open(&s.root, s.instance.as_deref())?;
    recovery::recover_if_interrupted(&inst)?;
    recovery::revive(&inst)?;
    // The same test as install's closing screen: the terminal sink's.
    let fancy = crate::report::fancy();
    loop {
        let st = status::gather(&inst.layout, &inst.deployment, inst.init);
        if s.json {
            println!("{}", serde_json::to_string(&st)?);
        } else {
            if s.watch && fancy {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", status::render(&st, fancy));
        }
        if !s.watch {
            return Ok(if st.healthy { ExitCode::SUCCESS } else { Exit::Unhealthy.into() });
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}
