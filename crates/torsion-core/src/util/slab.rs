//! A minimal slab: stable indexes, O(1) insert and remove, free slots reused.

/// A slot: a value, or a link in the list of free slots.
enum Slot<T> {
    Full(T),
    /// Free; the next free slot's index (`usize::MAX` ends the list).
    Free(usize),
}

pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    /// The first free slot (`usize::MAX` when none): the free list is threaded through the
    /// free slots themselves, so inserting into a slot freed earlier is one read and one write.
    free: usize,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: usize::MAX,
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` in a free slot (the last one freed), or a new one; its index. Inlined:
    /// the reactor's timers call it once per `call_later`, and out of line the value would be
    /// built on the stack and copied.
    #[inline]
    pub(crate) fn insert(&mut self, value: T) -> usize {
        self.len += 1;
        let i = self.free;
        match self.slots.get_mut(i) {
            Some(slot) => {
                if let Slot::Free(next) = *slot {
                    self.free = next;
                }
                *slot = Slot::Full(value);
                i
            }
            None => {
                self.slots.push(Slot::Full(value));
                self.slots.len() - 1
            }
        }
    }

    pub(crate) fn remove(&mut self, index: usize) -> Option<T> {
        let slot = self.slots.get_mut(index)?;
        if matches!(slot, Slot::Free(_)) {
            return None;
        }
        let Slot::Full(value) = std::mem::replace(slot, Slot::Free(self.free)) else {
            unreachable!("checked full above");
        };
        self.free = index;
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, index: usize) -> Option<&T> {
        match self.slots.get(index)? {
            Slot::Full(v) => Some(v),
            Slot::Free(_) => None,
        }
    }

    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        match self.slots.get_mut(index)? {
            Slot::Full(v) => Some(v),
            Slot::Free(_) => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| match s {
            Slot::Full(v) => Some(v),
            Slot::Free(_) => None,
        })
    }

    /// Takes every value out, leaving the slab empty.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        self.free = usize::MAX;
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|s| match s {
                Slot::Full(v) => Some(v),
                Slot::Free(_) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Slab;

    #[test]
    fn reuses_freed_slots() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None);
        let c = s.insert("c");
        assert_eq!(c, a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 2);
        // Several freed slots are reused, most recently freed first, before the slab grows.
        assert_eq!(s.remove(b), Some("b"));
        assert_eq!(s.remove(c), Some("c"));
        assert_eq!(s.insert("d"), c);
        assert_eq!(s.insert("e"), b);
        assert_eq!(s.insert("f"), 2);
        assert_eq!(s.len(), 3);
        assert_eq!(s.drain().len(), 3);
        assert_eq!(s.insert("g"), 0);
        assert_eq!(s.len(), 1);
    }
}
