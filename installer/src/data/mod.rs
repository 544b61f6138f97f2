//! Bytes at rest: database copies, backup archives, parallel gzip, encryption. Knows nothing of
//! colours, commands or the host.

pub mod archive;
pub mod contents;
pub mod crypt;
pub mod dbbackup;
pub mod pargz;
