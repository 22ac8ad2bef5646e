//! Connection slots: the global cap (`--max-connections`), the cap on unauthenticated
//! connections from one address (`--max-connections-per-address`), and which connection gives
//! way when the server is full: the longest-idle one, never one with a request in flight.
//!
//! A connection is *trusted* once its client certificate chains to the front-proxy CA (with an
//! allowed CN) or to the client CA: kube-apiserver reaches the server from few addresses, so its
//! connections are not counted against their address, and among idle connections untrusted ones
//! are evicted first. One address may hold `--max-connections-per-address` untrusted connections
//! *and* as many handshakes in progress: the first cap is applied once the handshake has told
//! whose the connection is, so untrusted connections sharing kube-apiserver's address never stop
//! its new connections; the second is applied at accept (a handshake says nothing yet).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

/// Every open connection, counted.
pub(super) struct Slots {
    max: usize,
    per_address: usize,
    /// The zero of [`Slot::idle_since`].
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<Slot>>,
    /// Connections per address still in their handshake.
    pending: HashMap<IpAddr, usize>,
    /// Untrusted connections per address, handshake done.
    untrusted: HashMap<IpAddr, usize>,
}

/// Where a connection stands: counted in `pending`, in `untrusted`, or in neither.
const PENDING: u8 = 0;
const UNTRUSTED: u8 = 1;
const TRUSTED: u8 = 2;

impl Inner {
    fn uncount(&mut self, slot: &Slot) {
        let map = match slot.stage.load(Ordering::Relaxed) {
            PENDING => &mut self.pending,
            UNTRUSTED => &mut self.untrusted,
            _ => return,
        };
        if let Some(n) = map.get_mut(&slot.addr) {
            *n -= 1;
            if *n == 0 {
                map.remove(&slot.addr);
            }
        }
    }
}

/// What one connection shares with the slot table.
pub(super) struct Slot {
    id: u64,
    addr: IpAddr,
    epoch: Instant,
    /// Requests whose handler has not yet answered.
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` of the last request's end (or of the accept).
    idle_since: AtomicU64,
    /// Whether any request came on the connection.
    asked: AtomicBool,
    /// [`PENDING`], [`UNTRUSTED`] or [`TRUSTED`]; changed under the table's lock.
    stage: AtomicU8,
    evicted: Notify,
}

/// Why a new connection was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its address holds `--max-connections-per-address` untrusted connections (or handshakes).
    PerAddress,
    /// `--max-connections` are open and every one has a request in flight.
    Full,
}

/// A connection's place in the table, released on drop.
pub(super) struct Ticket {
    slots: Arc<Slots>,
    slot: Arc<Slot>,
}

impl Slots {
    pub(super) fn new(max: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            per_address,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open connections (evicted ones that are still closing not included).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Admits a connection from `addr`, evicting the longest-idle connection when the table is
    /// full (untrusted ones first); the evicted connection is told through [`Slot::evicted`].
    pub(super) fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Ticket, Refused> {
        let mut inner = self.lock();
        if inner.pending.get(&addr).copied().unwrap_or(0) >= self.per_address {
            return Err(Refused::PerAddress);
        }
        if inner.open.len() >= self.max {
            let victim = inner
                .open
                .values()
                .filter(|s| s.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|s| {
                    (
                        s.stage.load(Ordering::Relaxed) == TRUSTED,
                        s.idle_since.load(Ordering::Relaxed),
                    )
                })
                .map(|s| s.id);
            let Some(victim) = victim else {
                return Err(Refused::Full);
            };
            if let Some(slot) = inner.open.remove(&victim) {
                inner.uncount(&slot);
                slot.evicted.notify_one();
            }
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let slot = Arc::new(Slot {
            id,
            addr,
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(millis(self.epoch)),
            asked: AtomicBool::new(false),
            stage: AtomicU8::new(PENDING),
            evicted: Notify::new(),
        });
        inner.open.insert(id, Arc::clone(&slot));
        *inner.pending.entry(addr).or_insert(0) += 1;
        Ok(Ticket {
            slots: Arc::clone(self),
            slot,
        })
    }
}

fn millis(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Ticket {
    /// The connection's shared state.
    pub(super) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// Records whose the connection is, once its handshake is done. A trusted one (kube-apiserver,
    /// a client of the client CA) is never counted against its address, and is evicted only
    /// when no untrusted connection is idle.
    ///
    /// # Errors
    /// [`Refused::PerAddress`] for an untrusted connection whose address already holds its share.
    pub(super) fn judged(&self, trusted: bool) -> Result<(), Refused> {
        let mut inner = self.slots.lock();
        if !inner.open.contains_key(&self.slot.id) {
            return Ok(()); // evicted meanwhile: its counts went with it
        }
        if !trusted
            && inner.untrusted.get(&self.slot.addr).copied().unwrap_or(0) >= self.slots.per_address
        {
            return Err(Refused::PerAddress);
        }
        inner.uncount(&self.slot);
        let stage = if trusted { TRUSTED } else { UNTRUSTED };
        self.slot.stage.store(stage, Ordering::Relaxed);
        if !trusted {
            *inner.untrusted.entry(self.slot.addr).or_insert(0) += 1;
        }
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.slots.lock();
        // Absent when it was evicted: its counts went with it.
        if inner.open.remove(&self.slot.id).is_some() {
            inner.uncount(&self.slot);
        }
    }
}

impl Slot {
    /// Completes when the connection has been chosen to make room for a new one.
    pub(super) async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// Marks a request as started; the returned guard marks it finished when dropped.
    pub(super) fn request(self: &Arc<Self>) -> InFlight {
        self.asked.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// Whether any request came on the connection.
    pub(super) fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }

    /// How long the connection has had no request in flight; `None` while one is.
    pub(super) fn idle_for(&self) -> Option<std::time::Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = self.idle_since.load(Ordering::Relaxed);
        Some(std::time::Duration::from_millis(
            millis(self.epoch).saturating_sub(since),
        ))
    }
}

/// One request in flight on a connection.
pub(super) struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .idle_since
            .store(millis(self.0.epoch), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_untrusted_connections_and_of_handshakes() {
        let slots = Slots::new(10, 2);
        let a = slots.admit(ip(1)).unwrap();
        let b = slots.admit(ip(1)).unwrap();
        // Two handshakes in progress: a third is refused at accept; another address is not.
        assert_eq!(slots.admit(ip(1)).err(), Some(Refused::PerAddress));
        let _c = slots.admit(ip(2)).unwrap();
        a.judged(false).unwrap();
        b.judged(false).unwrap();
        // Two untrusted connections: a third gets through its handshake, then is refused...
        let d = slots.admit(ip(1)).unwrap();
        assert_eq!(d.judged(false), Err(Refused::PerAddress));
        drop(d);
        // ...unless it is trusted, as kube-apiserver's connections are.
        let mut kept = Vec::new();
        for _ in 0..3 {
            let t = slots.admit(ip(1)).unwrap();
            t.judged(true).unwrap();
            kept.push(t);
        }
        drop(a);
        let e = slots.admit(ip(1)).unwrap();
        e.judged(false).unwrap();
        kept.push(e);
        assert_eq!(slots.len(), 6); // b, the other address's, three trusted, e
    }

    #[tokio::test]
    async fn a_full_table_evicts_the_longest_idle_untrusted_connection_never_a_busy_one() {
        let slots = Slots::new(3, 10);
        let busy = slots.admit(ip(1)).unwrap();
        let _request = busy.slot().request();
        let trusted = slots.admit(ip(2)).unwrap();
        trusted.judged(true).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let idle = slots.admit(ip(3)).unwrap();
        // The fourth evicts the idle untrusted one, though the trusted one is idle for longer.
        let fourth = slots.admit(ip(4)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), idle.slot().evicted())
            .await
            .expect("the idle untrusted connection was told to go");
        assert_eq!(slots.len(), 3);
        drop(idle);
        assert_eq!(
            slots.len(),
            3,
            "dropping an evicted ticket frees nothing twice"
        );
        // Then the idle trusted one; with every connection busy, the new one is refused.
        let _r = fourth.slot().request();
        let fifth = slots.admit(ip(5)).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), trusted.slot().evicted())
            .await
            .expect("the idle trusted connection was told to go");
        let _r5 = fifth.slot().request();
        assert_eq!(slots.admit(ip(6)).err(), Some(Refused::Full));
        assert!(busy.slot().idle_for().is_none());
    }
}
