//! The Kubernetes surface.

pub mod error;
pub mod openapi;
pub mod path;
pub mod quantity;
pub mod routes;
pub mod selector;
pub mod types;
