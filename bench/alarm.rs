//! Wake-ups at precise instants, for the delay proxy.
//!
//! tokio's timer counts whole milliseconds and rounds every deadline up,
//! and its driver wakes on the next tick after that: a chunk held with
//! `sleep_until` is written about a millisecond late, on average, and
//! more on a busy machine. Four such crossings per message are a tenth of
//! a 10 ms round trip, an error the benchmark would then charge to the
//! relay under test. An [`Alarm`] is one thread that sleeps on a condition
//! variable (nanosecond timeouts) until the earliest instant asked for and
//! completes that waiter; the proxy measures how late its chunks still go
//! out (`delay::LATENESS`).
//!
//! [`Clock`] picks the alarm or tokio's timer: tests use tokio's, whose
//! clock they can pause.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};

/// How the proxy waits for a due time.
#[derive(Clone)]
pub enum Clock {
    /// tokio's timer (millisecond ticks; follows a paused test clock).
    Tokio,
    /// A thread of its own with precise wake-ups.
    Precise(Arc<Alarm>),
}

impl Clock {
    /// Returns at `due` (at once if it has passed).
    pub async fn until(&self, due: Instant) {
        if due <= Instant::now() {
            return;
        }
        match self {
            Clock::Tokio => sleep_until(due).await,
            Clock::Precise(a) => a.until(due).await,
        }
    }
}

/// One waiter: its instant, a sequence number (equal instants keep their
/// order) and the sender that completes it.
struct Entry {
    due: std::time::Instant,
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

#[derive(Default)]
struct Waiting {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

/// The alarm thread's shared state. Its entries are bounded by what
/// waits on it: the proxy's chunks in flight.
#[derive(Default)]
pub struct Alarm {
    waiting: Mutex<Waiting>,
    changed: Condvar,
}

impl Alarm {
    /// Starts the alarm thread; it runs as long as the process.
    pub fn start() -> Arc<Alarm> {
        let alarm = Arc::new(Alarm::default());
        let a = alarm.clone();
        std::thread::Builder::new()
            .name("delay-alarm".into())
            .spawn(move || a.run())
            .expect("start the alarm thread");
        alarm
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Completes at `due`, give or take the thread's wake-up latency.
    pub async fn until(&self, due: Instant) {
        let (wake, woken) = oneshot::channel();
        {
            let mut w = self.lock();
            w.seq += 1;
            let seq = w.seq;
            w.heap.push(Entry {
                due: due.into_std(),
                seq,
                wake,
            });
        }
        self.changed.notify_one();
        let _ = woken.await;
    }

    fn run(&self) {
        let mut w = self.lock();
        loop {
            let now = std::time::Instant::now();
            match w.heap.peek().map(|e| e.due) {
                None => w = self.changed.wait(w).unwrap_or_else(|p| p.into_inner()),
                Some(due) if due <= now => {
                    if let Some(e) = w.heap.pop() {
                        let _ = e.wake.send(());
                    }
                }
                Some(due) => {
                    w = self
                        .changed
                        .wait_timeout(w, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_complete_in_the_order_of_their_instants() {
        let alarm = Alarm::start();
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Asked in reverse order; equal instants keep the order asked.
        for (i, ms) in [(0, 30u64), (1, 20), (2, 10), (3, 10)] {
            let (a, o) = (alarm.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                a.until(start + Duration::from_millis(ms)).await;
                o.lock().unwrap().push(i);
                assert!(Instant::now() >= start + Duration::from_millis(ms));
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [2, 3, 1, 0]);
    }

    #[tokio::test]
    async fn a_passed_instant_returns_at_once() {
        let clock = Clock::Precise(Alarm::start());
        let before = Instant::now();
        clock.until(before - Duration::from_millis(5)).await;
        clock.until(before).await;
    }
}
