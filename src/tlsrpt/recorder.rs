//! Recording session outcomes: the [`Recorder`] the outbound side calls
//! for every TLS attempt, and [`StoreRecorder`], which writes them to the
//! state database.
//!
//! The outbound side never waits for the disk: `record` queues the event
//! on a bounded channel, and one writer thread commits whatever is queued
//! in a single durable transaction (group commit), usually within a
//! millisecond or two. So a crash loses at most the events of the commit
//! in flight, memory stays bounded, and a full queue (a disk that cannot
//! keep up) drops events and counts them instead of slowing mail down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, warn};

use super::counts::{self, Event, Limits};
use super::day::{Clock, Day};
use crate::state::Store;

/// Where session outcomes go.
pub trait Recorder: Send + Sync {
    fn record(&self, event: Event);
}

/// Records nothing (one-shot commands, tests that do not look).
pub struct Discard;

impl Recorder for Discard {
    fn record(&self, _: Event) {}
}

/// How many events may wait for the writer.
pub const QUEUE: usize = 10_000;
/// Most events in one transaction.
const BATCH: usize = 1_000;

enum Msg {
    Event(Day, Box<Event>),
    Flush(std_mpsc::Sender<()>),
}

/// Writes events to the state database (see the module text).
pub struct StoreRecorder {
    tx: mpsc::Sender<Msg>,
    clock: Arc<dyn Clock>,
    dropped: AtomicU64,
}

impl StoreRecorder {
    /// Starts the writer thread on `store`.
    pub fn start(store: Store, clock: Arc<dyn Clock>, limits: Limits) -> Arc<StoreRecorder> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("tlsrpt-writer".into())
            .spawn(move || write_loop(rx, store, limits));
        if let Err(e) = spawned {
            error!("TLS reporting: cannot start the writer thread: {e}; nothing is recorded");
        }
        Arc::new(StoreRecorder {
            tx,
            clock,
            dropped: AtomicU64::new(0),
        })
    }

    /// Waits (at most `limit`) until every event recorded so far is
    /// committed. False when it took longer or the writer is gone.
    pub fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = std_mpsc::channel();
        if self.tx.try_send(Msg::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(limit).is_ok()
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Recorder for StoreRecorder {
    fn record(&self, event: Event) {
        let day = self.clock.today();
        if self.tx.try_send(Msg::Event(day, Box::new(event))).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            crate::metrics::global().tlsrpt_dropped();
            if n.is_power_of_two() {
                warn!("TLS reporting: the state database does not keep up; {n} session outcome(s) not recorded");
            }
        }
    }
}

fn write_loop(mut rx: mpsc::Receiver<Msg>, store: Store, limits: Limits) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiting = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(day, e) => batch.push((day, *e)),
                Msg::Flush(done) => waiting.push(done),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = counts::add(&store, &batch, limits) {
                error!(
                    "TLS reporting: {e}; {} session outcome(s) lost",
                    batch.len()
                );
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlsrpt::day::StartedAt;
    use crate::tlsrpt::model::Policy;

    #[test]
    fn events_are_committed_on_the_clocks_day() {
        let store = Store::in_memory();
        let at = crate::tlsrpt::day::parse_rfc3339("2026-12-06T12:00:00Z").unwrap();
        let r = StoreRecorder::start(
            store.clone(),
            Arc::new(StartedAt::new(at)),
            Limits { max_details: 10 },
        );
        for _ in 0..2500 {
            r.record(Event::success("a.example", Policy::none("a.example")));
        }
        assert!(r.flush(Duration::from_secs(10)));
        let d = Day::parse("2026-12-06").unwrap();
        let got = counts::day(&store, d, None).unwrap();
        assert_eq!(got[0].sessions().successful + r.dropped(), 2500);
    }
}
