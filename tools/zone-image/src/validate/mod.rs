//! Checks run on the assembled proto (stage 3): SMF manifests, SAPI
//! manifests and templates, boot scripts.

pub mod sapi;
pub mod script;
pub mod smf;
