//! The table of unauthenticated connections (sshd's MaxStartups, with
//! eviction of the oldest instead of random refusal).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

/// How the unauthenticated phase of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupEnd {
    /// It authenticated.
    Authenticated,
    /// The login grace time ran out.
    GraceTime,
    /// It was the oldest when the table was full.
    Evicted,
    /// The connection closed first.
    Closed,
}

impl StartupEnd {
    /// The disconnect message.
    pub fn reason(&self) -> &'static str {
        match self {
            StartupEnd::Authenticated | StartupEnd::Closed => "",
            StartupEnd::GraceTime => "authentication timed out",
            StartupEnd::Evicted => "too many unauthenticated connections",
        }
    }
}

/// Unauthenticated connections by id (ids grow, so the first is oldest).
pub struct Startups {
    max: usize,
    table: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Startups {
    /// A table admitting `max` connections.
    pub fn new(max: usize) -> Startups {
        Startups {
            max: max.max(1),
            table: Mutex::new(BTreeMap::new()),
        }
    }

    /// Admit connection `id`, evicting the oldest if the table is full.
    pub fn admit(self: &Arc<Self>, id: u64) -> Slot {
        let notify = Arc::new(Notify::new());
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        while table.len() >= self.max {
            match table.pop_first() {
                Some((_, oldest)) => oldest.notify_one(),
                None => break,
            }
        }
        table.insert(id, notify.clone());
        Slot {
            id,
            notify,
            startups: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// A connection's place in the table; leaving it frees the place.
pub struct Slot {
    id: u64,
    notify: Arc<Notify>,
    startups: Weak<Startups>,
}

impl Slot {
    /// Wait until the connection authenticates, runs out of time, is
    /// evicted, or closes; then leave the table.
    pub async fn wait(self, authenticated: oneshot::Receiver<()>, grace: Duration) -> StartupEnd {
        let end = tokio::select! {
            result = authenticated => if result.is_ok() { StartupEnd::Authenticated } else { StartupEnd::Closed },
            () = tokio::time::sleep(grace) => StartupEnd::GraceTime,
            () = self.notify.notified() => StartupEnd::Evicted,
        };
        drop(self);
        end
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(startups) = self.startups.upgrade() {
            startups.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_table_evicts_the_oldest() {
        let startups = Arc::new(Startups::new(2));
        let first = startups.admit(1);
        let _second = startups.admit(2);
        let _third = startups.admit(3);
        let (_tx, rx) = oneshot::channel();
        assert_eq!(
            first.wait(rx, Duration::from_secs(5)).await,
            StartupEnd::Evicted
        );
    }

    #[tokio::test]
    async fn grace_time_and_authentication() {
        let startups = Arc::new(Startups::new(4));
        let (_tx, rx) = oneshot::channel();
        assert_eq!(
            startups.admit(1).wait(rx, Duration::from_millis(10)).await,
            StartupEnd::GraceTime
        );
        let (tx, rx) = oneshot::channel();
        tx.send(()).unwrap();
        assert_eq!(
            startups.admit(2).wait(rx, Duration::from_secs(5)).await,
            StartupEnd::Authenticated
        );
        assert!(startups.table.lock().unwrap().is_empty());
    }
}
