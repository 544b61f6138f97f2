//! Every trust decision of vikunja-pve lives here, shared by the bootstrap and the installer: the
//! release manifest format, minisign signature checks against the embedded keys, hash and size
//! checks, freeze and rollback rules, the HTTPS downloader, and safe unpacking. Nothing in this
//! crate executes what it downloads.

pub mod atomic;
pub mod build_info;
pub mod exit;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod hash;
pub mod keys;
pub mod manifest;
#[cfg(feature = "fetch")]
pub mod obtain;
pub mod policy;
#[cfg(feature = "fetch")]
pub mod resolve;
pub mod serial;
pub mod time;
pub mod unpack;
pub mod version;

pub use exit::Exit;
pub use keys::{Keyring, SigError, TrustedComment, Verified};
pub use manifest::{names, Asset, ReleaseManifest};
pub use policy::{accept_asset, accept_manifest, AcceptedRelease, Policy, TrustError};
pub use version::Version;
