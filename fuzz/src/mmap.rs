//! The `mmap` bookkeeping ([`posix_shim::ranges::RangeMap`], what `posix-shim/src/mem.rs` keeps
//! its mappings in) under random sequences of map, unmap (cut) and coverage queries, checked
//! after every call against a model that records, for each address of a small space, which
//! mapping owns it and at which file offset. Ranges near the top of the address space test that
//! ends never overflow.

use crate::input::Input;
use posix_shim::ranges::{InsertError, RangeMap, Slice};

/// Addresses of the model: `0..SPACE` (small, so that calls overlap often).
const SPACE: u64 = 256;

/// A mapping's identity and the file offset of its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tag {
    id: u32,
    offset: u64,
}

impl Slice for Tag {
    fn advanced(&self, by: u64) -> Tag {
        Tag { id: self.id, offset: self.offset.checked_add(by).expect("offset overflow (mmap refuses such ranges)") }
    }
}

/// Runs the calls `data` describes.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut map = RangeMap::new();
    let mut model: Vec<Option<Tag>> = vec![None; SPACE as usize];
    let mut next_id = 0u32;
    for _ in 0..256 {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let (a, b) = (u64::from(input.u8()), u64::from(input.u8()));
        match op % 4 {
            0 => {
                // map [a, a + b) at file offset `offset`
                let offset = u64::from(input.u32()) << 12;
                next_id += 1;
                let tag = Tag { id: next_id, offset };
                let end = a + b;
                let result = map.insert(a, b, tag);
                let expected = if b == 0 {
                    Err(InsertError::Invalid)
                } else if (a..end.min(SPACE)).any(|at| model[at as usize].is_some()) {
                    Err(InsertError::Overlaps)
                } else {
                    Ok(())
                };
                assert_eq!(result, expected, "insert({a}, {b})");
                if result.is_ok() {
                    for at in a..end.min(SPACE) {
                        model[at as usize] = Some(Tag { id: next_id, offset: offset + (at - a) });
                    }
                }
            }
            1 => {
                // unmap [a, b)
                let (start, end) = (a.min(b), a.max(b));
                let removed = map.cut(start, end);
                let mut expected_bytes = 0;
                for at in start..end.min(SPACE) {
                    expected_bytes += u64::from(model[at as usize].take().is_some());
                }
                let mut previous_end = 0;
                for piece in &removed {
                    assert!(piece.len > 0 && piece.start >= start && piece.start + piece.len <= end, "{piece:?}");
                    assert!(piece.start >= previous_end, "removed pieces overlap: {removed:?}");
                    previous_end = piece.start + piece.len;
                }
                assert_eq!(removed.iter().map(|p| p.len).sum::<u64>(), expected_bytes, "cut({start}, {end})");
            }
            2 => {
                let (start, end) = (a.min(b), a.max(b));
                let expected = (start..end).all(|at| model[at as usize].is_some());
                assert_eq!(map.covers(start, end), expected, "covers({start}, {end})");
            }
            _ => {
                // A range at the top of the address space: in or refused, never an overflow.
                let start = u64::MAX - (a << 4);
                let len = b << 4;
                next_id += 1;
                let result = map.insert(start, len, Tag { id: next_id, offset: 0 });
                assert_eq!(result.is_ok(), len > 0 && start.checked_add(len).is_some(), "insert({start:#x}, {len})");
                if result.is_ok() {
                    assert!(map.covers(start, start + len));
                    let removed = map.cut(start, u64::MAX);
                    assert_eq!(removed.iter().map(|p| p.len).sum::<u64>(), len);
                }
            }
        }
        check(&map, &model);
    }
}

/// The map equals the model: pieces sorted and disjoint, each byte owned as the model says.
fn check(map: &RangeMap<Tag>, model: &[Option<Tag>]) {
    let mut owned = vec![None; model.len()];
    let mut previous_end = 0;
    for piece in map.iter() {
        assert!(piece.len > 0 && piece.start >= previous_end, "pieces overlap");
        previous_end = piece.start + piece.len;
        for at in piece.start..previous_end.min(SPACE) {
            owned[at as usize] = Some(Tag { id: piece.value.id, offset: piece.value.offset + (at - piece.start) });
        }
    }
    assert_eq!(owned, model, "bookkeeping differs from the model");
}
