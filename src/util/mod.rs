//! Small things every layer shares and none owns: durations and byte sizes as people write them,
//! excerpts of bad input for error messages, Kubernetes' DNS name rules, the stamps that tell
//! that a mounted file changed, this build's version ([`version`]) and this process's uid
//! ([`process`]). Pure code but for [`stamp`] and [`process`], which read file metadata.

pub mod dns;
pub mod duration;
pub mod process;
#[cfg(test)]
pub(crate) mod scratch;
pub mod size;
pub mod stamp;
pub mod text;
pub mod version;
