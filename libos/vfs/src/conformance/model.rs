//! The randomized model test: random sequences of namespace and data operations run on the file
//! system under test and on a tiny reference model; every result (value or errno) must agree,
//! and at the end of each sequence the whole tree is compared.
//!
//! The namespace is small on purpose (three names, depth three) so that operations collide:
//! renames over existing names, removing non-empty directories, walking through files. Open
//! files are kept across operations, so writes through files whose names were removed or
//! replaced are checked too. A failure names the seed; [`ModelConfig`] with
//! `first_seed` = that seed and `sequences` = 1 replays it.

use super::FileSystemFactory;
use crate::types::{FileType, OpenFlags};
use crate::{OpenFile, Vfs};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use libos_core::Errno;

/// How much of the model test to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    /// The seed of the first sequence; sequence `i` uses `first_seed + i`.
    pub first_seed: u64,
    /// Sequences to run, each on a fresh file system.
    pub sequences: u64,
    /// Operations per sequence.
    pub operations: usize,
}

impl ModelConfig {
    /// A quick run (the `model` case, and the guest).
    pub const QUICK: ModelConfig = ModelConfig { first_seed: 1, sequences: 100, operations: 150 };
    /// A thorough run for host tests.
    pub const THOROUGH: ModelConfig = ModelConfig { first_seed: 1, sequences: 3000, operations: 200 };
}

/// Runs the model test; `Err` names the seed, the operation and the disagreement.
pub fn run_model(factory: &dyn FileSystemFactory, config: ModelConfig) -> Result<(), String> {
    for i in 0..config.sequences {
        let seed = config.first_seed.wrapping_add(i);
        let vfs = Vfs::new(factory.create()?);
        let mut run = Run { vfs, model: Model::new(), handles: Vec::new(), rng: Rng::new(seed), log: Vec::new() };
        if let Err(why) = run.sequence(config.operations) {
            let recent = run.log.len().saturating_sub(12);
            return Err(format!(
                "model test seed {seed}: {why}\n  last operations:\n    {}",
                run.log[recent..].join("\n    ")
            ));
        }
    }
    Ok(())
}

/// xorshift64*: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

enum MNode {
    File(Vec<u8>),
    Dir(BTreeMap<String, usize>),
}

/// The reference: an arena of nodes (never freed, so open handles stay valid) and link counts.
struct Model {
    nodes: Vec<MNode>,
    links: Vec<u64>,
}

const ROOT: usize = 0;

impl Model {
    fn new() -> Model {
        Model { nodes: vec![MNode::Dir(BTreeMap::new())], links: vec![2] }
    }

    fn dir(&self, node: usize) -> Option<&BTreeMap<String, usize>> {
        match &self.nodes[node] {
            MNode::Dir(entries) => Some(entries),
            MNode::File(_) => None,
        }
    }

    fn dir_mut(&mut self, node: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.nodes[node] {
            MNode::Dir(entries) => entries,
            MNode::File(_) => unreachable!("dir_mut on a file"),
        }
    }

    fn is_dir(&self, node: usize) -> bool {
        self.dir(node).is_some()
    }

    /// Walks all components.
    fn walk(&self, components: &[&str]) -> Result<usize, Errno> {
        let mut cur = ROOT;
        for name in components {
            let entries = self.dir(cur).ok_or(Errno::ENOTDIR)?;
            cur = *entries.get(*name).ok_or(Errno::ENOENT)?;
        }
        Ok(cur)
    }

    /// The parent directory of the last component, and the entry if it exists.
    fn parent<'p>(&self, components: &[&'p str]) -> Result<(usize, &'p str, Option<usize>), Errno> {
        let (last, dirs) = components.split_last().ok_or(Errno::EBUSY)?;
        let parent = self.walk(dirs)?;
        let entries = self.dir(parent).ok_or(Errno::ENOTDIR)?;
        Ok((parent, last, entries.get(*last).copied()))
    }

    fn add(&mut self, node: MNode) -> usize {
        let links = if matches!(node, MNode::Dir(_)) { 2 } else { 1 };
        self.nodes.push(node);
        self.links.push(links);
        self.nodes.len() - 1
    }

    fn is_ancestor(&self, ancestor: usize, node: usize) -> bool {
        // The model has no parent pointers: search the subtree of `ancestor`.
        if ancestor == node {
            return true;
        }
        self.dir(ancestor).is_some_and(|entries| entries.values().any(|&child| self.is_ancestor(child, node)))
    }

    fn nlink(&self, node: usize) -> u64 {
        match self.dir(node) {
            Some(entries) if self.links[node] > 0 => {
                2 + entries.values().filter(|&&child| self.is_dir(child)).count() as u64
            }
            _ => self.links[node],
        }
    }
}

/// What an operation returned, comparable between the model and the VFS.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Done,
    Count(usize),
    Data(Vec<u8>),
    Stat { file_type: FileType, size: Option<u64>, nlink: u64 },
    Names(Vec<String>),
    Handle,
}

struct Run {
    vfs: Vfs,
    model: Model,
    /// Open files: the VFS's and the model node they refer to.
    handles: Vec<(OpenFile, usize)>,
    rng: Rng,
    log: Vec<String>,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn join(components: &[&str]) -> String {
    let mut path = String::new();
    for c in components {
        path.push('/');
        path.push_str(c);
    }
    path
}

impl Run {
    fn random_path(&mut self) -> Vec<&'static str> {
        let depth = 1 + self.rng.below(3) as usize;
        (0..depth).map(|_| NAMES[self.rng.below(3) as usize]).collect()
    }

    fn random_data(&mut self) -> Vec<u8> {
        let len = match self.rng.below(4) {
            0 => 0,
            1 => self.rng.below(16),
            2 => self.rng.below(5000),
            _ => 4096,
        } as usize;
        let byte = self.rng.next() as u8;
        (0..len).map(|i| byte.wrapping_add(i as u8)).collect()
    }

    fn random_offset(&mut self) -> u64 {
        match self.rng.below(3) {
            0 => 0,
            1 => self.rng.below(100),
            _ => self.rng.below(20_000),
        }
    }

    fn sequence(&mut self, operations: usize) -> Result<(), String> {
        for _ in 0..operations {
            let (what, model, real) = self.step();
            self.log.push(what);
            if model != real {
                return Err(format!("model {model:?} != file system {real:?}"));
            }
        }
        self.compare_tree(ROOT, &mut Vec::new())
    }

    /// One random operation on both sides.
    fn step(&mut self) -> (String, Result<Seen, Errno>, Result<Seen, Errno>) {
        let p = self.random_path();
        let path = join(&p);
        match self.rng.below(14) {
            0 | 1 => {
                let excl = self.rng.below(3) == 0;
                let mut flags = OpenFlags::CREAT | OpenFlags::RDWR;
                if excl {
                    flags |= OpenFlags::EXCL;
                }
                let model = self.m_create(&p, excl);
                let real = self.vfs.open(&path, flags, 0o644).map(|_| Seen::Done);
                (format!("create {path} excl={excl}"), model, real)
            }
            2 => {
                let model = self.m_mkdir(&p);
                (format!("mkdir {path}"), model, self.vfs.mkdir(&path, 0o755).map(|_| Seen::Done))
            }
            3 => {
                let model = self.m_rmdir(&p);
                (format!("rmdir {path}"), model, self.vfs.rmdir(&path).map(|_| Seen::Done))
            }
            4 => {
                let model = self.m_unlink(&p);
                (format!("unlink {path}"), model, self.vfs.unlink(&path).map(|_| Seen::Done))
            }
            5 | 6 => {
                let q = self.random_path();
                let to = join(&q);
                let model = self.m_rename(&p, &q);
                (format!("rename {path} {to}"), model, self.vfs.rename(&path, &to).map(|_| Seen::Done))
            }
            7 => {
                let q = self.random_path();
                let to = join(&q);
                let model = self.m_link(&p, &q);
                (format!("link {path} {to}"), model, self.vfs.link(&path, &to).map(|_| Seen::Done))
            }
            8 => {
                let size = self.random_offset();
                let model = self.m_file(&p).map(|node| {
                    if let MNode::File(data) = &mut self.model.nodes[node] {
                        data.resize(size as usize, 0);
                    }
                    Seen::Done
                });
                (format!("truncate {path} {size}"), model, self.vfs.truncate(&path, size).map(|_| Seen::Done))
            }
            9 => {
                let model = self.model.walk(&p).map(|node| self.m_stat(node));
                let real = self.vfs.metadata(&path).map(|m| Seen::Stat {
                    file_type: m.file_type,
                    size: (!m.is_dir()).then_some(m.size),
                    nlink: m.nlink,
                });
                (format!("stat {path}"), model, real)
            }
            10 => {
                let model = self.model.walk(&p).and_then(|node| {
                    let entries = self.model.dir(node).ok_or(Errno::ENOTDIR)?;
                    Ok(Seen::Names(entries.keys().cloned().collect()))
                });
                let real = self.vfs.read_dir(&path).map(|entries| {
                    let mut names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
                    names.sort();
                    Seen::Names(names)
                });
                (format!("readdir {path}"), model, real)
            }
            11 => {
                // Open (kept for later operations).
                let model = self
                    .model
                    .walk(&p)
                    .and_then(|node| if self.model.is_dir(node) { Err(Errno::EISDIR) } else { Ok(node) });
                let real = self.vfs.open(&path, OpenFlags::RDWR, 0);
                let what = format!("open {path}");
                match (model, real) {
                    (Ok(node), Ok(file)) => {
                        if self.handles.len() >= 4 {
                            self.handles.remove(0);
                        }
                        self.handles.push((file, node));
                        (what, Ok(Seen::Handle), Ok(Seen::Handle))
                    }
                    (model, real) => (what, model.map(|_| Seen::Handle), real.map(|_| Seen::Handle)),
                }
            }
            12 => self.handle_write(),
            _ => self.handle_read(),
        }
    }

    fn handle_write(&mut self) -> (String, Result<Seen, Errno>, Result<Seen, Errno>) {
        if self.handles.is_empty() {
            return (String::from("(no handle to write)"), Ok(Seen::Done), Ok(Seen::Done));
        }
        let i = self.rng.below(self.handles.len() as u64) as usize;
        let offset = self.random_offset();
        let data = self.random_data();
        let node = self.handles[i].1;
        if let MNode::File(content) = &mut self.model.nodes[node]
            && !data.is_empty()
        {
            let end = offset as usize + data.len();
            if content.len() < end {
                content.resize(end, 0);
            }
            content[offset as usize..end].copy_from_slice(&data);
        }
        let real = self.handles[i].0.write_at(offset, &data).map(Seen::Count);
        (format!("write handle {i} at {offset}: {} bytes", data.len()), Ok(Seen::Count(data.len())), real)
    }

    fn handle_read(&mut self) -> (String, Result<Seen, Errno>, Result<Seen, Errno>) {
        if self.handles.is_empty() {
            return (String::from("(no handle to read)"), Ok(Seen::Done), Ok(Seen::Done));
        }
        let i = self.rng.below(self.handles.len() as u64) as usize;
        let offset = self.random_offset();
        let len = self.rng.below(9000) as usize;
        let model = match &self.model.nodes[self.handles[i].1] {
            MNode::File(content) => {
                let start = (offset as usize).min(content.len());
                let end = (start + len).min(content.len());
                Seen::Data(content[start..end].to_vec())
            }
            MNode::Dir(_) => Seen::Done,
        };
        let mut buf = vec![0u8; len];
        let real = self.handles[i].0.read_at(offset, &mut buf).map(|n| {
            buf.truncate(n);
            Seen::Data(buf)
        });
        (format!("read handle {i} at {offset}: {len} bytes"), Ok(model), real)
    }

    fn m_stat(&self, node: usize) -> Seen {
        match &self.model.nodes[node] {
            MNode::File(data) => Seen::Stat {
                file_type: FileType::Regular,
                size: Some(data.len() as u64),
                nlink: self.model.nlink(node),
            },
            MNode::Dir(_) => Seen::Stat { file_type: FileType::Directory, size: None, nlink: self.model.nlink(node) },
        }
    }

    /// The regular file at `p` (`EISDIR` for a directory).
    fn m_file(&self, p: &[&str]) -> Result<usize, Errno> {
        let node = self.model.walk(p)?;
        if self.model.is_dir(node) { Err(Errno::EISDIR) } else { Ok(node) }
    }

    fn m_create(&mut self, p: &[&str], excl: bool) -> Result<Seen, Errno> {
        let (parent, name, existing) = self.model.parent(p)?;
        match existing {
            Some(_) if excl => Err(Errno::EEXIST),
            Some(node) if self.model.is_dir(node) => Err(Errno::EISDIR),
            Some(_) => Ok(Seen::Done),
            None => {
                let node = self.model.add(MNode::File(Vec::new()));
                self.model.dir_mut(parent).insert(String::from(name), node);
                Ok(Seen::Done)
            }
        }
    }

    fn m_mkdir(&mut self, p: &[&str]) -> Result<Seen, Errno> {
        let (parent, name, existing) = self.model.parent(p)?;
        if existing.is_some() {
            return Err(Errno::EEXIST);
        }
        let node = self.model.add(MNode::Dir(BTreeMap::new()));
        self.model.dir_mut(parent).insert(String::from(name), node);
        Ok(Seen::Done)
    }

    fn m_rmdir(&mut self, p: &[&str]) -> Result<Seen, Errno> {
        let (parent, name, existing) = self.model.parent(p)?;
        let node = existing.ok_or(Errno::ENOENT)?;
        match self.model.dir(node) {
            None => Err(Errno::ENOTDIR),
            Some(entries) if !entries.is_empty() => Err(Errno::ENOTEMPTY),
            Some(_) => {
                self.model.dir_mut(parent).remove(name);
                self.model.links[node] = 0;
                Ok(Seen::Done)
            }
        }
    }

    fn m_unlink(&mut self, p: &[&str]) -> Result<Seen, Errno> {
        let (parent, name, existing) = self.model.parent(p)?;
        let node = existing.ok_or(Errno::ENOENT)?;
        if self.model.is_dir(node) {
            return Err(Errno::EISDIR);
        }
        self.model.dir_mut(parent).remove(name);
        self.model.links[node] -= 1;
        Ok(Seen::Done)
    }

    fn m_link(&mut self, from: &[&str], to: &[&str]) -> Result<Seen, Errno> {
        let source = self.model.walk(from)?;
        if self.model.is_dir(source) {
            return Err(Errno::EPERM);
        }
        let (parent, name, existing) = self.model.parent(to)?;
        if existing.is_some() {
            return Err(Errno::EEXIST);
        }
        self.model.dir_mut(parent).insert(String::from(name), source);
        self.model.links[source] += 1;
        Ok(Seen::Done)
    }

    fn m_rename(&mut self, from: &[&str], to: &[&str]) -> Result<Seen, Errno> {
        let (old_parent, old_name, source) = self.model.parent(from)?;
        let (new_parent, new_name, target) = self.model.parent(to)?;
        let source = source.ok_or(Errno::ENOENT)?;
        let source_dir = self.model.is_dir(source);
        if let Some(target) = target {
            if target == source {
                return Ok(Seen::Done);
            }
            match (source_dir, self.model.is_dir(target)) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                _ => {}
            }
        }
        if source_dir && self.model.is_ancestor(source, new_parent) {
            return Err(Errno::EINVAL);
        }
        if let Some(target) = target
            && self.model.dir(target).is_some_and(|entries| !entries.is_empty())
        {
            return Err(Errno::ENOTEMPTY);
        }
        self.model.dir_mut(old_parent).remove(old_name);
        if let Some(target) = self.model.dir_mut(new_parent).insert(String::from(new_name), source) {
            self.model.links[target] = if self.model.is_dir(target) { 0 } else { self.model.links[target] - 1 };
        }
        Ok(Seen::Done)
    }

    /// Compares the whole tree under model node `node` (at `path`) with the file system.
    fn compare_tree<'a>(&'a self, node: usize, path: &mut Vec<&'a str>) -> Result<(), String> {
        let text = if path.is_empty() { String::from("/") } else { join(path) };
        let real = self.vfs.metadata(&text).map(|m| Seen::Stat {
            file_type: m.file_type,
            size: (!m.is_dir()).then_some(m.size),
            nlink: m.nlink,
        });
        let model = self.m_stat(node);
        if real.as_ref() != Ok(&model) {
            return Err(format!("final tree: stat {text}: model {model:?} != file system {real:?}"));
        }
        match &self.model.nodes[node] {
            MNode::File(data) => {
                let file = self.vfs.open(&text, OpenFlags::RDONLY, 0).map_err(|e| format!("open {text}: {e:?}"))?;
                let mut buf = vec![0u8; data.len() + 1];
                let n = file.read_at(0, &mut buf).map_err(|e| format!("read {text}: {e:?}"))?;
                if buf[..n] != data[..] {
                    return Err(format!("final tree: {text}: contents differ"));
                }
            }
            MNode::Dir(entries) => {
                let mut names: Vec<String> = self
                    .vfs
                    .read_dir(&text)
                    .map_err(|e| format!("readdir {text}: {e:?}"))?
                    .into_iter()
                    .map(|e| e.name)
                    .collect();
                names.sort();
                let expected: Vec<String> = entries.keys().cloned().collect();
                if names != expected {
                    return Err(format!("final tree: {text}: entries {names:?}, model {expected:?}"));
                }
                for (name, &child) in entries {
                    path.push(name);
                    self.compare_tree(child, path)?;
                    path.pop();
                }
            }
        }
        Ok(())
    }
}
