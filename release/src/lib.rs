//! Release tooling: reproducible installer bundles, minisign keys and signatures, the signed
//! release manifest and the install.sh stub. Used by `cargo xtask dist` and the `vikunja-release` CLI.

pub mod assemble;
pub mod bundle;
pub mod signing;

pub use assemble::{assemble, sign_asset, write_manifest, Inputs, ReleaseSpec};
pub use bundle::{files_under, write_bundle, BundleFile};
pub use signing::SigningKey;
