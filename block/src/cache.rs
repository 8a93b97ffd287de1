//! A bounded cache of metadata clusters (L2 tables, refcount blocks), least recently used out.
//!
//! Entries are whole clusters keyed by host offset. L2 tables are written through (the cache
//! never holds the only copy); refcount blocks may be dirty under lazy refcounts, and an evicted
//! dirty block is handed back to the caller to write.

/// One cached cluster.
#[derive(Debug)]
struct Entry {
    offset: u64,
    data: Vec<u8>,
    dirty: bool,
    used: u64,
}

/// A bounded cache of metadata clusters.
#[derive(Debug)]
pub struct TableCache {
    entries: Vec<Entry>,
    capacity: usize,
    clock: u64,
}

/// A dirty cluster evicted from the cache, to be written back.
pub type Evicted = Option<(u64, Vec<u8>)>;

impl TableCache {
    /// A cache of at most `capacity` clusters (at least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.max(2),
            clock: 0,
        }
    }

    /// The cached cluster at `offset`, marked as just used.
    pub fn get(&mut self, offset: u64) -> Option<&mut Vec<u8>> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.entries.iter_mut().find(|e| e.offset == offset)?;
        e.used = clock;
        Some(&mut e.data)
    }

    /// Marks the cached cluster at `offset` dirty (it must be cached).
    pub fn mark_dirty(&mut self, offset: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.offset == offset) {
            e.dirty = true;
        }
    }

    /// Caches `data` as the cluster at `offset`, evicting the least recently used entry if
    /// full; returns the evicted entry if it was dirty.
    pub fn insert(&mut self, offset: u64, data: Vec<u8>) -> Evicted {
        self.clock += 1;
        if let Some(e) = self.entries.iter_mut().find(|e| e.offset == offset) {
            e.data = data;
            e.used = self.clock;
            return None;
        }
        let mut evicted = None;
        if self.entries.len() >= self.capacity {
            let lru = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
                .unwrap_or(0);
            let e = self.entries.swap_remove(lru);
            if e.dirty {
                evicted = Some((e.offset, e.data));
            }
        }
        self.entries.push(Entry {
            offset,
            data,
            dirty: false,
            used: self.clock,
        });
        evicted
    }

    /// Drops the cluster at `offset` (freed), returning its data if it was dirty.
    pub fn remove(&mut self, offset: u64) -> Evicted {
        let i = self.entries.iter().position(|e| e.offset == offset)?;
        let e = self.entries.swap_remove(i);
        e.dirty.then_some((e.offset, e.data))
    }

    /// Takes every dirty cluster (now clean) for writing back, in offset order.
    pub fn take_dirty(&mut self) -> Vec<(u64, Vec<u8>)> {
        let mut out: Vec<(u64, Vec<u8>)> = self
            .entries
            .iter_mut()
            .filter(|e| e.dirty)
            .map(|e| {
                e.dirty = false;
                (e.offset, e.data.clone())
            })
            .collect();
        out.sort_by_key(|(o, _)| *o);
        out
    }

    /// Forgets everything (dirty entries are lost: callers write them back first).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_and_dirty_eviction() {
        let mut c = TableCache::new(2);
        assert!(c.insert(0, vec![1]).is_none());
        assert!(c.insert(512, vec![2]).is_none());
        c.mark_dirty(0);
        assert!(c.get(0).is_some()); // 512 is now the least recently used
        assert!(c.insert(1024, vec![3]).is_none());
        assert!(c.get(512).is_none());
        assert_eq!(c.insert(2048, vec![4]), Some((0, vec![1]))); // the dirty LRU comes back
        assert_eq!(c.take_dirty(), vec![]);
    }
}
