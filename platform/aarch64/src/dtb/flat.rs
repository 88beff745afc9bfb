//! A reader for the flattened device tree format (devicetree specification, chapter 5): the
//! header, the memory reservation block, and the structure block's token stream.
//!
//! Why not the `fdt` crate, which this module replaced: it panics on some malformed trees (a
//! kernel panic from bad boot input), and it decodes every property name it walks past, which
//! made device-tree discovery most of the aarch64 boot's instructions. This reader checks every
//! offset against the block it points into and ends an iteration at the first malformed token, so
//! a broken tree yields missing nodes (reported by the caller as errors), never a panic; walking
//! costs a few instructions per token.

/// `FDT_BEGIN_NODE`: a node starts; its NUL-terminated name follows.
const BEGIN_NODE: u32 = 1;
/// `FDT_END_NODE`.
const END_NODE: u32 = 2;
/// `FDT_PROP`: value length, name offset in the strings block, value.
const PROP: u32 = 3;
/// `FDT_NOP`: skipped.
const NOP: u32 = 4;

const MAGIC: u32 = 0xd00d_feed;
const HEADER_LEN: usize = 40;

/// Why a device tree cannot be read at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlatError {
    /// The first word is not `0xd00dfeed`.
    BadMagic,
    /// The header claims more bytes than there are, or blocks outside the tree.
    Truncated,
}

/// A flattened device tree.
#[derive(Clone, Copy, Debug)]
pub struct Fdt<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
    reservations: &'a [u8],
}

fn be32(bytes: &[u8], offset: usize) -> Option<u32> {
    let word = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
}

fn be64(bytes: &[u8], offset: usize) -> Option<u64> {
    Some((u64::from(be32(bytes, offset)?) << 32) | u64::from(be32(bytes, offset + 4)?))
}

/// The NUL-terminated string at `offset`, and the offset just past its NUL.
fn c_string(bytes: &[u8], offset: usize) -> Option<(&str, usize)> {
    let rest = bytes.get(offset..)?;
    let len = rest.iter().position(|&b| b == 0)?;
    Some((core::str::from_utf8(&rest[..len]).ok()?, offset + len + 1))
}

const fn align4(offset: usize) -> usize {
    (offset + 3) & !3
}

impl<'a> Fdt<'a> {
    /// Opens the tree at the start of `bytes` (which may extend past its end).
    pub fn new(bytes: &'a [u8]) -> Result<Fdt<'a>, FlatError> {
        let word = |i: usize| be32(bytes, 4 * i).ok_or(FlatError::Truncated);
        if bytes.len() < HEADER_LEN {
            return Err(if be32(bytes, 0) == Some(MAGIC) { FlatError::Truncated } else { FlatError::BadMagic });
        }
        if word(0)? != MAGIC {
            return Err(FlatError::BadMagic);
        }
        let total = word(1)? as usize;
        let bytes = bytes.get(..total).ok_or(FlatError::Truncated)?;
        let block = |offset: u32, len: u32| {
            let start = offset as usize;
            start.checked_add(len as usize).and_then(|end| bytes.get(start..end)).ok_or(FlatError::Truncated)
        };
        let (off_struct, off_strings, off_reservations) = (word(2)?, word(3)?, word(4)?);
        let (size_strings, size_struct) = (word(8)?, word(9)?);
        Ok(Fdt {
            structs: block(off_struct, size_struct)?,
            strings: block(off_strings, size_strings)?,
            reservations: bytes.get(off_reservations as usize..).ok_or(FlatError::Truncated)?,
        })
    }

    /// The root node (`None` for an empty or malformed structure block).
    pub fn root(&self) -> Option<Node<'a>> {
        let mut offset = 0;
        loop {
            match be32(self.structs, offset)? {
                NOP => offset += 4,
                BEGIN_NODE => {
                    let (name, after) = c_string(self.structs, offset + 4)?;
                    return Some(Node { fdt: *self, name, body: align4(after) });
                }
                _ => return None,
            }
        }
    }

    /// The node at `path` (`/a/b`), matching names exactly (unit addresses included).
    pub fn find_node(&self, path: &str) -> Option<Node<'a>> {
        path.split('/').filter(|part| !part.is_empty()).try_fold(self.root()?, |node, part| {
            node.children().find(|child| child.name == part)
        })
    }

    /// The memory reservation block: `(address, size)` pairs.
    pub fn memory_reservations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let block = self.reservations;
        (0..).map_while(move |i: usize| {
            let entry = (be64(block, 16 * i)?, be64(block, 16 * i + 8)?);
            (entry != (0, 0)).then_some(entry)
        })
    }

    /// The token at `offset` and the offset of the next one.
    fn token(&self, offset: usize) -> Option<(Token<'a>, usize)> {
        let s = self.structs;
        match be32(s, offset)? {
            BEGIN_NODE => {
                let (name, after) = c_string(s, offset + 4)?;
                Some((Token::Begin(name), align4(after)))
            }
            END_NODE => Some((Token::End, offset + 4)),
            NOP => Some((Token::Nop, offset + 4)),
            PROP => {
                // The name stays an offset until someone reads it: skipping a subtree then
                // costs no string work.
                let len = be32(s, offset + 4)? as usize;
                let name_offset = be32(s, offset + 8)? as usize;
                let start = offset + 12;
                let value = s.get(start..start.checked_add(len)?)?;
                Some((Token::Prop { name_offset, value }, align4(start + len)))
            }
            _ => None, // FDT_END or garbage: nothing more to read
        }
    }
}

enum Token<'a> {
    Begin(&'a str),
    End,
    Prop { name_offset: usize, value: &'a [u8] },
    Nop,
}

/// A node: its name (with unit address, e.g. `memory@40000000`) and where its body starts.
#[derive(Clone, Copy, Debug)]
pub struct Node<'a> {
    fdt: Fdt<'a>,
    /// The node name (empty for the root).
    pub name: &'a str,
    body: usize,
}

/// A property: name and raw big-endian value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Property<'a> {
    /// The property name.
    pub name: &'a str,
    /// The value bytes.
    pub value: &'a [u8],
}

impl Property<'_> {
    /// A 1- or 2-cell number value.
    pub fn as_u64(&self) -> Option<u64> {
        match self.value.len() {
            4 => be32(self.value, 0).map(u64::from),
            8 => be64(self.value, 0),
            _ => None,
        }
    }
}

impl<'a> Node<'a> {
    /// The node's properties, in tree order.
    pub fn properties(&self) -> impl Iterator<Item = Property<'a>> + 'a {
        let fdt = self.fdt;
        let mut offset = Some(self.body);
        core::iter::from_fn(move || {
            loop {
                let (token, next) = fdt.token(offset?)?;
                offset = Some(next);
                match token {
                    Token::Prop { name_offset, value } => {
                        // A name outside the strings block ends the walk like any other damage.
                        let Some((name, _)) = c_string(fdt.strings, name_offset) else {
                            offset = None;
                            return None;
                        };
                        return Some(Property { name, value });
                    }
                    Token::Nop => {}
                    Token::Begin(_) | Token::End => {
                        offset = None;
                        return None;
                    }
                }
            }
        })
    }

    /// The property called `name`.
    pub fn property(&self, name: &str) -> Option<Property<'a>> {
        self.properties().find(|p| p.name == name)
    }

    /// The node's direct children, in tree order.
    pub fn children(&self) -> impl Iterator<Item = Node<'a>> + 'a {
        let fdt = self.fdt;
        let mut offset = Some(self.body);
        core::iter::from_fn(move || {
            loop {
                let (token, next) = fdt.token(offset?)?;
                match token {
                    Token::Prop { .. } | Token::Nop => offset = Some(next),
                    Token::End => {
                        offset = None;
                        return None;
                    }
                    Token::Begin(name) => {
                        // Yield the child; continue after its subtree (offsets only grow, so
                        // a malformed tree cannot loop).
                        offset = skip_subtree(&fdt, next);
                        return Some(Node { fdt, name, body: next });
                    }
                }
            }
        })
    }
}

/// The offset after the `END_NODE` that closes the node whose body starts at `offset`.
fn skip_subtree(fdt: &Fdt<'_>, mut offset: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        let (token, next) = fdt.token(offset)?;
        offset = next;
        match token {
            Token::Begin(_) => depth += 1,
            Token::End if depth == 0 => return Some(offset),
            Token::End => depth -= 1,
            Token::Prop { .. } | Token::Nop => {}
        }
    }
}
