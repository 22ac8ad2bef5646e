//! Small things every layer shares and none owns: durations and byte sizes as people write them,
//! excerpts of bad input for error messages, Kubernetes' DNS name rules, and the stamps that
//! tell that a mounted file changed, and this build's version ([`version`]). Pure code but for
//! [`stamp`], which reads file metadata.

pub mod dns;
pub mod duration;
#[cfg(test)]
pub(crate) mod scratch;
pub mod size;
pub mod stamp;
pub mod text;
pub mod version;
