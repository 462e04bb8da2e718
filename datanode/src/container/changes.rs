//! Which replicas changed since the last container report each SCM answered: the source of
//! the incremental reports heartbeats carry. A datanode heartbeats to every SCM of the
//! service, and each may have answered a different report last, so every change is fanned out
//! to one set per SCM link. In each set, a replica is either changed (new, state, used bytes
//! or block count) or removed, whichever happened last.

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

/// The replicas changed or removed and not yet reported, per SCM link (one link until
/// [`Changes::set_links`] says otherwise).
#[derive(Debug)]
pub(crate) struct Changes {
    links: Mutex<Vec<Sets>>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            links: Mutex::new(vec![Sets::default()]),
        }
    }
}

impl Changes {
    fn links(&self) -> std::sync::MutexGuard<'_, Vec<Sets>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the sets of `link`; an unknown link has nothing (and keeps nothing).
    fn with_link<T: Default>(&self, link: usize, f: impl FnOnce(&mut Sets) -> T) -> T {
        self.links().get_mut(link).map(f).unwrap_or_default()
    }

    /// Tracks changes for `n` links (at least one). Called once at start, before any report:
    /// the changes recorded so far are kept for every link.
    pub(crate) fn set_links(&self, n: usize) {
        let mut links = self.links();
        let changed: BTreeSet<u64> = links.iter().flat_map(|s| s.changed.clone()).collect();
        let removed: BTreeSet<u64> = links.iter().flat_map(|s| s.removed.clone()).collect();
        links.clear();
        links.extend((0..n.max(1)).map(|_| Sets {
            changed: changed.clone(),
            removed: removed.difference(&changed).copied().collect(),
        }));
    }

    pub(crate) fn changed(&self, id: u64) {
        for s in self.links().iter_mut() {
            s.removed.remove(&id);
            s.changed.insert(id);
        }
    }

    pub(crate) fn removed(&self, id: u64) {
        for s in self.links().iter_mut() {
            s.changed.remove(&id);
            s.removed.insert(id);
        }
    }

    /// Takes at most `max` changes of `link` (removals first, they are small), leaving the
    /// rest for its next report.
    pub(crate) fn take(&self, link: usize, max: usize) -> ChangeBatch {
        self.with_link(link, |s| {
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
        })
    }

    /// Takes everything of `link` (a full report covers it all, and a link that will register
    /// again needs none of it).
    pub(crate) fn take_all(&self, link: usize) -> ChangeBatch {
        self.with_link(link, |s| ChangeBatch {
            changed: std::mem::take(&mut s.changed).into_iter().collect(),
            removed: std::mem::take(&mut s.removed).into_iter().collect(),
        })
    }

    /// Gives back to `link` a batch its SCM did not get; what happened to a replica since
    /// wins.
    pub(crate) fn restore(&self, link: usize, batch: ChangeBatch) {
        self.with_link(link, |s| {
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
        })
    }

    /// Changes waiting for `link`'s next report.
    pub(crate) fn pending(&self, link: usize) -> usize {
        self.with_link(link, |s| s.changed.len() + s.removed.len())
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
        let b = c.take(0, 3);
        assert_eq!(b.removed, vec![3, 9]);
        assert_eq!(b.changed, vec![1]);
        assert_eq!(c.pending(0), 3, "the rest waits for the next report");
        // The heartbeat failed: the batch comes back, but 9 was recreated meanwhile and 1
        // removed: those later events stand.
        c.changed(9);
        c.removed(1);
        c.restore(0, b);
        let all = c.take_all(0);
        assert_eq!(all.changed, vec![2, 4, 5, 9]);
        assert_eq!(all.removed, vec![1, 3]);
        assert_eq!(c.take(0, 10), ChangeBatch::default());
    }

    #[test]
    fn every_link_sees_every_change_until_its_own_scm_answers() {
        let c = Changes::default();
        c.changed(1);
        c.removed(2);
        c.set_links(3);
        c.changed(3);
        // Link 0's SCM answered; links 1 and 2 still owe theirs everything.
        let b = c.take_all(0);
        assert_eq!((b.changed, b.removed), (vec![1, 3], vec![2]));
        assert_eq!(c.pending(0), 0);
        assert_eq!((c.pending(1), c.pending(2)), (3, 3));
        c.removed(1);
        let b = c.take(1, 10);
        assert_eq!((&b.changed, &b.removed), (&vec![3], &vec![1, 2]));
        assert_eq!(c.take_all(0).removed, vec![1]);
        c.restore(1, b);
        assert_eq!(c.pending(1), 3);
        // A link that does not exist holds nothing.
        assert_eq!(c.take_all(7), ChangeBatch::default());
        assert_eq!(c.pending(7), 0);
    }
}
