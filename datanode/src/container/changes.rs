//! Which replicas changed since the last container report SCM answered: the source of the
//! incremental reports heartbeats carry. A replica is either changed (new, state, used bytes or
//! block count) or removed, whichever happened last.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Changes taken for one report; given back with [`Changes::restore`] if SCM never got it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChangeBatch {
    pub changed: Vec<u64>,
    pub removed: Vec<u64>,
}

#[derive(Debug, Default)]
struct Sets {
    changed: BTreeSet<u64>,
    removed: BTreeSet<u64>,
}

/// The replicas changed or removed and not yet reported.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    sets: Mutex<Sets>,
}

impl Changes {
    fn sets(&self) -> std::sync::MutexGuard<'_, Sets> {
        self.sets.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn changed(&self, id: u64) {
        let mut s = self.sets();
        s.removed.remove(&id);
        s.changed.insert(id);
    }

    pub(crate) fn removed(&self, id: u64) {
        let mut s = self.sets();
        s.changed.remove(&id);
        s.removed.insert(id);
    }

    /// Takes at most `max` changes (removals first, they are small), leaving the rest for the
    /// next report.
    pub(crate) fn take(&self, max: usize) -> ChangeBatch {
        let mut s = self.sets();
        let mut batch = ChangeBatch::default();
        while batch.removed.len() < max
            && let Some(id) = s.removed.pop_first()
        {
            batch.removed.push(id);
        }
        while batch.removed.len() + batch.changed.len() < max
            && let Some(id) = s.changed.pop_first()
        {
            batch.changed.push(id);
        }
        batch
    }

    /// Takes everything (a full report covers it all).
    pub(crate) fn take_all(&self) -> ChangeBatch {
        let mut s = self.sets();
        ChangeBatch {
            changed: std::mem::take(&mut s.changed).into_iter().collect(),
            removed: std::mem::take(&mut s.removed).into_iter().collect(),
        }
    }

    /// Gives back a batch SCM did not get; what happened to a replica since wins.
    pub(crate) fn restore(&self, batch: ChangeBatch) {
        let mut s = self.sets();
        for id in batch.changed {
            if !s.removed.contains(&id) {
                s.changed.insert(id);
            }
        }
        for id in batch.removed {
            if !s.changed.contains(&id) {
                s.removed.insert(id);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        let s = self.sets();
        s.changed.len() + s.removed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_bounded_restored_and_the_latest_event_wins() {
        let c = Changes::default();
        for id in 1..=5 {
            c.changed(id);
        }
        c.removed(3);
        c.removed(9);
        let b = c.take(3);
        assert_eq!(b.removed, vec![3, 9]);
        assert_eq!(b.changed, vec![1]);
        assert_eq!(c.pending(), 3, "the rest waits for the next report");
        // The heartbeat failed: the batch comes back, but 9 was recreated meanwhile and 1
        // removed: those later events stand.
        c.changed(9);
        c.removed(1);
        c.restore(b);
        let all = c.take_all();
        assert_eq!(all.changed, vec![2, 4, 5, 9]);
        assert_eq!(all.removed, vec![1, 3]);
        assert_eq!(c.take(10), ChangeBatch::default());
    }
}
