//! What the waiting jobs need: the nodes they ask for and the smallest MiniCluster size they
//! all fit in, by a first-fit model of the scheduler.
//!
//! Pure code: the snapshot gives the resource sets and the waiting jobs with their [`Shape`]s,
//! this module places them. The definitions (also in `docs/autoscaling.md`):
//! - pending nodes: the `nodes` of node requests (exclusive ones included), plus the cores of
//!   the others divided by the cores of the largest node, or their GPUs by the GPUs of the
//!   largest node, whichever is more, rounded up once for the sum;
//! - size: the smallest S such that every job, in the scheduler's order (priority, then
//!   submission), fits first-fit in rank order on ranks [0, S) beside what is allocated now.
//!   Ranks at or above the current size (brokers not running) count as empty nodes of their
//!   shape in R; drained and excluded ranks take nothing, except the ones this server drained
//!   for a shrink, which count as they would be once undrained; a job whose constraint a node
//!   fails does not go there. A job that fits nowhere makes S the whole set. At least 1.
//! - drained room: with the drain-before-shrink loop, a job the model places on a rank this
//!   server drained counts only once it has waited `room_after` (`--undrain-grace`); before
//!   that it is left out. Most such waits end when a job on the open ranks ends, and the rank
//!   could not be undrained sooner than a grace after the size rose anyway.
//! - liveness: a job the model places on the running nodes but that has waited longer than
//!   `stuck_after` while S is not above the current size is placed on new nodes only, so that
//!   a model that disagrees with the real scheduler costs nodes for a while, never a job that
//!   waits forever.

mod shape;

pub use shape::{Constraint, Nodes, Shape};

use std::time::Duration;

use crate::source::rlist::{IdSet, ResourceSet};

/// One runnable waiting job (PRIORITY or SCHED, urgency > 0).
#[derive(Clone, Debug)]
pub struct Waiting<'a> {
    /// What it asks for.
    pub shape: &'a Shape,
    /// Seconds since the epoch since when it waits for resources (`None` when the listing does
    /// not say: such a job is never taken as stuck).
    pub since: Option<f64>,
}

/// The free room of one rank, as the model fills it.
#[derive(Clone, Debug)]
struct Room {
    rank: u32,
    cores: u32,
    free_cores: u32,
    free_gpus: u32,
    /// At or above the current size: a node the MiniCluster would add.
    new: bool,
    /// Drained by this server for a shrink: room once undrained.
    drained: bool,
}

/// The ranks a job may be placed on, with their free cores and GPUs.
#[derive(Clone, Debug)]
pub struct Pool {
    rooms: Vec<Room>,
    /// Ranks in the whole set: the largest size there is.
    all: u64,
    current_size: u64,
    max_cores: u64,
    max_gpus: u64,
    /// How long a job must have waited before it counts on drained room (zero: at once).
    room_after: Duration,
}

/// What the resource sets say about where jobs can go.
pub struct Resources<'a> {
    /// Every rank (R, up or down).
    pub all: &'a ResourceSet,
    /// What jobs hold now.
    pub allocated: &'a ResourceSet,
    /// Ranks whose broker runs.
    pub online: &'a IdSet,
    /// Ranks that take nothing: drained (not for a shrink by this server) and excluded ones.
    pub closed: &'a IdSet,
    /// Ranks this server drained for a shrink: room as they would be once undrained.
    pub shrink_drained: &'a IdSet,
    /// Highest online rank + 1.
    pub current_size: u64,
}

/// How many ids, as the `u32` the model counts in (saturating).
pub(crate) fn count(ids: &IdSet) -> u32 {
    u32::try_from(ids.len()).unwrap_or(u32::MAX)
}

impl Pool {
    /// The room on every rank of `r.all`.
    pub fn new(r: &Resources<'_>) -> Pool {
        let mut rooms = Vec::new();
        for (rank, node) in r.all.nodes() {
            if r.closed.contains(rank) {
                continue;
            }
            let new = u64::from(rank) >= r.current_size;
            let (free_cores, free_gpus) = if r.online.contains(rank) || new {
                match r.allocated.node(rank) {
                    Some(a) => (
                        count(&node.cores.difference(&a.cores)),
                        count(&node.gpus.difference(&a.gpus)),
                    ),
                    None => (count(&node.cores), count(&node.gpus)),
                }
            } else {
                continue; // below the current size and not running: nothing can go there now
            };
            rooms.push(Room {
                rank,
                cores: count(&node.cores),
                free_cores,
                free_gpus,
                new,
                drained: r.shrink_drained.contains(rank),
            });
        }
        Pool {
            rooms,
            all: r.all.nnodes(),
            current_size: r.current_size,
            max_cores: r.all.max_cores_per_node(),
            max_gpus: r.all.nodes().map(|(_, n)| n.gpus.len()).max().unwrap_or(0),
            room_after: Duration::ZERO,
        }
    }

    /// The same pool, where a job counts on this server's drained room only once it has waited
    /// `wait` (the drained-room rule of the module documentation).
    pub fn drained_room_after(mut self, wait: Duration) -> Pool {
        self.room_after = wait;
        self
    }

    /// Where `shape` goes first-fit, as (room index, cores, GPUs) takes, or `None` when it
    /// does not fit; with `only_new`, only on ranks at or above the current size.
    fn fit(
        &self,
        shape: &Shape,
        nodes: &Nodes<'_>,
        only_new: bool,
    ) -> Option<Vec<(usize, u32, u32)>> {
        let usable = |room: &Room| {
            (!only_new || room.new)
                && shape
                    .constraint
                    .as_ref()
                    .is_none_or(|c| c.allows(room.rank, nodes))
        };
        let mut takes = Vec::new();
        if shape.nodes > 0 {
            let cores = shape.slots.saturating_mul(shape.cores_per_slot);
            let gpus = shape.slots.saturating_mul(shape.gpus_per_slot);
            for (i, room) in self.rooms.iter().enumerate() {
                if takes.len() == shape.nodes as usize {
                    break;
                }
                if !usable(room) {
                    continue;
                }
                if shape.exclusive {
                    if room.free_cores == room.cores
                        && room.cores >= cores
                        && room.free_gpus >= gpus
                    {
                        takes.push((i, room.free_cores, room.free_gpus));
                    }
                } else if room.free_cores >= cores && room.free_gpus >= gpus {
                    takes.push((i, cores, gpus));
                }
            }
            (takes.len() == shape.nodes as usize).then_some(takes)
        } else {
            let mut left = shape.slots;
            for (i, room) in self.rooms.iter().enumerate() {
                if left == 0 {
                    break;
                }
                if !usable(room) {
                    continue;
                }
                let mut fits = room.free_cores / shape.cores_per_slot;
                if let Some(by_gpus) = room.free_gpus.checked_div(shape.gpus_per_slot) {
                    fits = fits.min(by_gpus);
                }
                let n = fits.min(left);
                if n > 0 {
                    takes.push((i, n * shape.cores_per_slot, n * shape.gpus_per_slot));
                    left -= n;
                }
            }
            (left == 0).then_some(takes)
        }
    }

    fn take(&mut self, takes: &[(usize, u32, u32)]) -> u64 {
        let mut top = 0;
        for &(i, cores, gpus) in takes {
            let room = &mut self.rooms[i];
            room.free_cores -= cores;
            room.free_gpus -= gpus;
            top = top.max(u64::from(room.rank) + 1);
        }
        top
    }

    /// The nodes `jobs` ask for, by the pending-nodes rule of the module documentation.
    pub fn pending_nodes<'a>(&self, jobs: impl IntoIterator<Item = &'a Shape>) -> u64 {
        let (mut nodes, mut cores, mut gpus) = (0u64, 0u64, 0u64);
        for s in jobs {
            if s.nodes > 0 {
                nodes = nodes.saturating_add(u64::from(s.nodes));
            } else {
                cores = cores.saturating_add(s.cores());
                gpus = gpus.saturating_add(s.gpus());
            }
        }
        // No core (or GPU) known on any node: one node each is the conservative guess.
        let per = |n: u64, per_node: u64| n.div_ceil(per_node.max(1));
        let in_nodes = per(cores, self.max_cores).max(per(gpus, self.max_gpus));
        nodes.saturating_add(in_nodes)
    }

    /// The smallest size every job of `jobs` (in the scheduler's order) fits in, with the
    /// liveness rule for jobs waiting longer than `stuck_after` at `now` (seconds since the
    /// epoch).
    pub fn size(
        &self,
        jobs: &[Waiting<'_>],
        nodes: &Nodes<'_>,
        now: f64,
        stuck_after: Duration,
    ) -> u64 {
        let first = self.run(jobs, nodes, now, None);
        if first > self.current_size {
            return first; // growing already: whatever waits gets its chance on the new nodes
        }
        let old = |j: &Waiting<'_>| j.since.is_some_and(|t| now - t > stuck_after.as_secs_f64());
        if !jobs.iter().any(old) {
            return first;
        }
        self.run(jobs, nodes, now, Some(&old))
    }

    /// One first-fit pass; jobs for which `stuck` holds go on new nodes when they can.
    fn run(
        &self,
        jobs: &[Waiting<'_>],
        nodes: &Nodes<'_>,
        now: f64,
        stuck: Option<&dyn Fn(&Waiting<'_>) -> bool>,
    ) -> u64 {
        let mut pool = self.clone();
        let mut top = 1;
        // A job whose wait began less than `room_after` ago (a job whose start is unknown has
        // waited long enough).
        let young = |j: &Waiting<'_>| {
            j.since
                .is_some_and(|t| now - t < self.room_after.as_secs_f64())
        };
        for job in jobs {
            let Some(mut takes) = pool.fit(job.shape, nodes, false) else {
                top = self.all; // fits nowhere beside what runs now: the whole set
                continue;
            };
            let on_running_nodes = takes.iter().all(|&(i, ..)| !pool.rooms[i].new);
            if on_running_nodes && stuck.is_some_and(|s| s(job)) {
                if let Some(t) = pool.fit(job.shape, nodes, true) {
                    takes = t;
                }
            }
            if takes.iter().any(|&(i, ..)| pool.rooms[i].drained) && young(job) {
                continue; // on drained room, and not waiting long enough to count there
            }
            top = top.max(pool.take(&takes));
        }
        top.clamp(1, self.all.max(1))
    }
}

#[cfg(test)]
mod tests;
