//! The Kubernetes surface: the routes ([`routes`]) and what they are made of — request paths
//! ([`path`]), label selectors ([`selector`]), Quantity text ([`quantity`]), the wire types
//! ([`types`]), the objects a metric describes ([`objects`]), OpenAPI documents ([`openapi`]),
//! who a request is for ([`auth`]), `Status` errors ([`error`]), the handlers' state
//! ([`state`]) and the answers kept per snapshot ([`answers`]). It reads Flux state only through the broker handle and the value table.

pub mod answers;
pub mod auth;
pub mod error;
pub mod objects;
pub mod openapi;
pub mod path;
pub mod quantity;
pub mod routes;
pub mod selector;
pub mod state;
pub mod types;
