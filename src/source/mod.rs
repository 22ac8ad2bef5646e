//! The Flux side: the one thread that talks to the broker ([`broker`]), what a round of its
//! answers says ([`snapshot`]), the resource-set arithmetic it needs ([`rlist`]), the metric
//! catalogue computed from it ([`catalogue`]), what the waiting jobs need ([`demand`]), which ranks to drain before a shrink
//! ([`shrink`]) and the state of each rank ([`ranks`]). Nothing here knows about HTTP,
//! Kubernetes or scripts.

pub mod broker;
pub mod catalogue;
pub mod demand;
pub mod ranks;
pub mod rlist;
pub mod shrink;
pub mod snapshot;
