//! An index of the loadable modules of one kernel (`lib/modules/<kver>`), dependency closure,
//! and kmod's text index files (`modules.dep`, `modules.alias`, `modules.softdep`) — writers used
//! when building the initramfs, readers used by init at run time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::fnmatch::fnmatch;
use crate::modinfo::{
    module_name_from_path, normalize_alias, normalize_module_name, parse_builtin_modinfo,
    parse_modules_builtin, read_modinfo, ModInfo, SoftDep,
};

/// One loadable module found by [`ModuleIndex::scan`].
#[derive(Debug, Clone, Serialize)]
pub struct ModuleEntry {
    /// Normalised module name (`-` → `_`).
    pub name: String,
    /// Path relative to the modules directory, `/`-separated (e.g. `kernel/fs/fat/vfat.ko`).
    pub relpath: String,
    /// File size in bytes.
    pub size: u64,
    /// Parsed `.modinfo`.
    pub info: ModInfo,
}

impl ModuleEntry {
    /// Where the module goes in the image: [`ModuleEntry::relpath`] without a compression
    /// suffix (`kernel/fs/fat/vfat.ko.xz` → `kernel/fs/fat/vfat.ko`); the image holds every
    /// module uncompressed.
    pub fn image_relpath(&self) -> String {
        for suf in [".ko.xz", ".ko.zst", ".ko.gz"] {
            if let Some(stem) = self.relpath.strip_suffix(suf) {
                return format!("{stem}.ko");
            }
        }
        self.relpath.clone()
    }

    /// The compression of the module file, from its name.
    pub fn packed(&self) -> Option<crate::decompress::Packed> {
        crate::decompress::Packed::from_name(&self.relpath)
    }
}

/// Why a module is part of a closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "of", rename_all = "snake_case")]
pub enum Reason {
    /// Named (or matched by a glob / alias) in the wanted list.
    Wanted,
    /// Hard dependency (`depends=`) of the named module.
    Dependency(String),
    /// `softdep pre:` of the named module.
    SoftdepPre(String),
    /// `softdep post:` of the named module.
    SoftdepPost(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Wanted => write!(f, "wanted"),
            Reason::Dependency(of) => write!(f, "dependency of {of}"),
            Reason::SoftdepPre(of) => write!(f, "softdep (pre) of {of}"),
            Reason::SoftdepPost(of) => write!(f, "softdep (post) of {of}"),
        }
    }
}

/// Result of [`ModuleIndex::resolve_closure`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Closure {
    /// Module names, dependencies before their users (hard deps and `softdep pre` before the
    /// module, `softdep post` after it).
    pub modules: Vec<String>,
    /// Why each module is included (first reason found; `Wanted` takes precedence).
    pub reasons: BTreeMap<String, Reason>,
    /// Informational notes: unresolvable soft dependencies, wanted names satisfied by built-in
    /// code, soft-dependency cycles that were broken.
    pub notes: Vec<String>,
    /// For each wanted module, the entry of the wanted list that named it (a name, alias or
    /// glob), so a listing can say which profile line brought it in.
    pub wanted_by: BTreeMap<String, String>,
}

/// How a module name or alias resolves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Loadable modules that provide the name.
    pub modules: Vec<String>,
    /// Built-in modules that provide the name.
    pub builtin: Vec<String>,
}

impl Resolution {
    /// True when nothing provides the name.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && self.builtin.is_empty()
    }
}

/// Index of the loadable and built-in modules of one kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    modules_dir: PathBuf,
    modules: BTreeMap<String, ModuleEntry>,
    builtin: BTreeSet<String>,
    builtin_info: BTreeMap<String, ModInfo>,
    /// (normalised alias pattern, module name, built in?)
    aliases: Vec<(String, String, bool)>,
    notes: Vec<String>,
}

fn is_module_file(name: &str) -> bool {
    name.ends_with(".ko")
        || name.ends_with(".ko.xz")
        || name.ends_with(".ko.zst")
        || name.ends_with(".ko.gz")
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '/'])
}

impl ModuleIndex {
    /// Scans `modules_dir` (a `lib/modules/<kver>` directory): every `*.ko` file below it
    /// (symlinks such as `build`/`source` are not followed), plus `modules.builtin` and
    /// `modules.builtin.modinfo` when present. When two files give the same module name the one
    /// under `updates/` wins, otherwise the lexicographically first path (recorded in
    /// [`ModuleIndex::notes`]).
    pub fn scan(modules_dir: &Path) -> Result<ModuleIndex> {
        let meta = fs::metadata(modules_dir)
            .with_context(|| format!("scanning modules directory {}", modules_dir.display()))?;
        if !meta.is_dir() {
            bail!(
                "modules directory {} is not a directory",
                modules_dir.display()
            );
        }
        let mut files = Vec::new();
        walk(modules_dir, "", &mut files)?;
        files.sort();
        let mut entries = Vec::with_capacity(files.len());
        for rel in files {
            let full = modules_dir.join(&rel);
            let size = fs::metadata(&full)
                .with_context(|| format!("stat {}", full.display()))?
                .len();
            let info = read_modinfo(&full)?;
            entries.push(ModuleEntry {
                name: module_name_from_path(&rel),
                relpath: rel,
                size,
                info,
            });
        }
        let builtin_path = modules_dir.join("modules.builtin");
        let builtin = if builtin_path.exists() {
            let text = fs::read_to_string(&builtin_path)
                .with_context(|| format!("reading {}", builtin_path.display()))?;
            parse_modules_builtin(&text)
        } else {
            Vec::new()
        };
        let bi_path = modules_dir.join("modules.builtin.modinfo");
        let builtin_info = if bi_path.exists() {
            let data =
                fs::read(&bi_path).with_context(|| format!("reading {}", bi_path.display()))?;
            parse_builtin_modinfo(&data)
        } else {
            BTreeMap::new()
        };
        let mut idx = ModuleIndex::from_parts(entries, builtin, builtin_info);
        idx.modules_dir = modules_dir.to_path_buf();
        Ok(idx)
    }

    /// Builds an index from already-parsed parts (used by `scan`, and by tests).
    pub fn from_parts(
        entries: Vec<ModuleEntry>,
        builtin: Vec<String>,
        builtin_info: BTreeMap<String, ModInfo>,
    ) -> ModuleIndex {
        let mut idx = ModuleIndex::default();
        for e in entries {
            let name = e.name.clone();
            match idx.modules.get(&name) {
                Some(old) => {
                    let prefer_new = e.relpath.starts_with("updates/")
                        && !old.relpath.starts_with("updates/")
                        || (e.relpath.starts_with("updates/")
                            == old.relpath.starts_with("updates/")
                            && e.relpath < old.relpath);
                    let (keep, drop) = if prefer_new {
                        (e.relpath.clone(), old.relpath.clone())
                    } else {
                        (old.relpath.clone(), e.relpath.clone())
                    };
                    idx.notes.push(format!(
                        "module {name}: using {keep}, ignoring duplicate {drop}"
                    ));
                    if prefer_new {
                        idx.modules.insert(name, e);
                    }
                }
                None => {
                    idx.modules.insert(name, e);
                }
            }
        }
        idx.builtin = builtin.into_iter().collect();
        for name in builtin_info.keys() {
            idx.builtin.insert(name.clone());
        }
        idx.builtin_info = builtin_info;
        for (name, e) in &idx.modules {
            for a in &e.info.aliases {
                idx.aliases.push((normalize_alias(a), name.clone(), false));
            }
        }
        for (name, mi) in &idx.builtin_info {
            for a in &mi.aliases {
                idx.aliases.push((normalize_alias(a), name.clone(), true));
            }
        }
        idx
    }

    /// The directory this index was scanned from (empty for [`ModuleIndex::from_parts`]).
    pub fn modules_dir(&self) -> &Path {
        &self.modules_dir
    }

    /// Looks up a loadable module by name (`-` and `_` are equivalent).
    pub fn get(&self, name: &str) -> Option<&ModuleEntry> {
        self.modules.get(&normalize_module_name(name))
    }

    /// All loadable modules, by name.
    pub fn modules(&self) -> impl Iterator<Item = &ModuleEntry> {
        self.modules.values()
    }

    /// Number of loadable modules.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// True when no loadable module was found.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// True when `name` is built into the kernel (listed in `modules.builtin` or
    /// `modules.builtin.modinfo`).
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize_module_name(name))
    }

    /// Notes produced while scanning (duplicate module names).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Resolves a module name or alias the way `modprobe` does: an exact loadable module name,
    /// else a built-in module name, else every module whose alias pattern matches the
    /// (normalised) name.
    pub fn resolve(&self, name: &str) -> Resolution {
        let norm = normalize_module_name(name);
        if self.modules.contains_key(&norm) {
            return Resolution {
                modules: vec![norm],
                builtin: Vec::new(),
            };
        }
        if self.builtin.contains(&norm) {
            return Resolution {
                modules: Vec::new(),
                builtin: vec![norm],
            };
        }
        let alias = normalize_alias(name);
        let mut r = Resolution::default();
        for (pat, module, builtin) in &self.aliases {
            if fnmatch(pat, &alias) {
                let list = if *builtin {
                    &mut r.builtin
                } else {
                    &mut r.modules
                };
                if !list.contains(module) {
                    list.push(module.clone());
                }
            }
        }
        r
    }

    /// Module names needed to load everything in `wanted`, dependencies first. See
    /// [`ModuleIndex::resolve_closure`] for the rules; this drops the reasons and notes.
    pub fn closure(&self, wanted: &[String]) -> Result<Vec<String>> {
        Ok(self.resolve_closure(wanted)?.modules)
    }

    /// Computes the set of modules needed for `wanted`, with the reason for each.
    ///
    /// Each `wanted` entry is one of:
    /// * a glob containing `/` — matched with [`fnmatch`] against relative paths, e.g.
    ///   `kernel/drivers/ata/*` (`*` also crosses `/`);
    /// * a glob without `/` (`*`, `?`, `[`) — matched against module names, e.g. `nls_*`;
    /// * a module name (`-`/`_` equivalent); a built-in name is accepted (and noted);
    /// * an alias such as `fs-vfat` or `crypto-crc32c` (all matching modules are taken).
    ///
    /// An entry starting with `!` is an exclusion: modules it matches (same rules) are not taken
    /// as wanted, whichever entry named them (a module another one depends on is still
    /// included, as a dependency). Exclusions that match nothing are ignored.
    ///
    /// Entries that match nothing are an error naming all of them. The closure follows hard
    /// `depends=` (a dependency that is neither loadable nor built in is an error) and
    /// `softdep pre:`/`post:` (resolved through aliases; unresolvable ones are reported in
    /// [`Closure::notes`] and otherwise ignored). The order is topological: hard dependencies
    /// and pre soft dependencies come before the module, post soft dependencies after it.
    pub fn resolve_closure(&self, wanted: &[String]) -> Result<Closure> {
        let mut cl = Closure::default();
        let mut roots: Vec<String> = Vec::new();
        let mut unknown: Vec<String> = Vec::new();
        let excluded: BTreeSet<String> = wanted
            .iter()
            .filter_map(|w| w.trim().strip_prefix('!'))
            .flat_map(|pat| self.matching(pat.trim(), &mut Vec::new()).0)
            .collect();
        for w in wanted {
            let w = w.trim();
            if w.is_empty() || w.starts_with('!') {
                continue;
            }
            let (found, builtin_ok) = self.matching(w, &mut cl.notes);
            let found: Vec<String> = if found.iter().any(|f| excluded.contains(f)) {
                found.into_iter().filter(|f| !excluded.contains(f)).collect()
            } else {
                if found.is_empty() && !builtin_ok {
                    unknown.push(w.to_string());
                }
                found
            };
            for f in found {
                cl.reasons.entry(f.clone()).or_insert(Reason::Wanted);
                cl.wanted_by.entry(f.clone()).or_insert_with(|| w.to_string());
                if !roots.contains(&f) {
                    roots.push(f);
                }
            }
        }
        if !unknown.is_empty() {
            bail!(
                "unknown module(s) (no such module, alias or path match in {}): {}",
                self.modules_dir.display(),
                unknown.join(", ")
            );
        }
        let mut state: BTreeMap<String, u8> = BTreeMap::new();
        for r in &roots {
            self.visit(r, &mut state, &mut cl)?;
        }
        for x in &excluded {
            if state.contains_key(x.as_str()) {
                cl.notes.push(format!("{x} is excluded but needed by another module; included"));
            }
        }
        let mut seen = BTreeSet::new();
        cl.notes.retain(|n| seen.insert(n.clone()));
        Ok(cl)
    }

    /// The loadable modules one wanted-list entry names (see [`ModuleIndex::resolve_closure`]),
    /// and whether a built-in module satisfies it; notes about aliases and built-ins are
    /// appended to `notes`.
    fn matching(&self, w: &str, notes: &mut Vec<String>) -> (Vec<String>, bool) {
        let mut builtin_ok = false;
        let found: Vec<String> = if is_glob(w) {
            if w.contains('/') {
                self.modules
                    .values()
                    .filter(|e| fnmatch(w, &e.relpath) || fnmatch(w, &e.image_relpath()))
                    .map(|e| e.name.clone())
                    .collect()
            } else {
                let pat = normalize_alias(w);
                self.modules
                    .keys()
                    .filter(|n| fnmatch(&pat, n))
                    .cloned()
                    .collect()
            }
        } else {
            let r = self.resolve(w);
            if r.modules.is_empty() && !r.builtin.is_empty() {
                builtin_ok = true;
                notes.push(format!(
                    "wanted {w} is built into the kernel ({})",
                    r.builtin.join(", ")
                ));
            }
            if !r.modules.is_empty() && normalize_module_name(w) != r.modules[0] {
                notes.push(format!(
                    "wanted {w} resolved through aliases to {}",
                    r.modules.join(", ")
                ));
            }
            r.modules
        };
        (found, builtin_ok)
    }

    /// Depth-first visit; `state`: 1 = in progress, 2 = done.
    fn visit(&self, name: &str, state: &mut BTreeMap<String, u8>, cl: &mut Closure) -> Result<()> {
        if state.contains_key(name) {
            return Ok(());
        }
        state.insert(name.to_string(), 1);
        let entry = self
            .modules
            .get(name)
            .with_context(|| format!("internal: module {name} vanished from index"))?;
        // Record reasons for all direct dependencies first, so that a module is attributed to
        // its nearest user rather than to whatever the depth-first walk reached first.
        for d in &entry.info.depends {
            if self.modules.contains_key(d) {
                cl.reasons
                    .entry(d.clone())
                    .or_insert_with(|| Reason::Dependency(name.to_string()));
            }
        }
        for d in &entry.info.depends {
            if self.modules.contains_key(d) {
                match state.get(d.as_str()) {
                    None => self.visit(d, state, cl)?,
                    Some(1) => bail!("dependency cycle: {name} depends on {d}, which needs {name}"),
                    _ => {}
                }
            } else if !self.builtin.contains(d) {
                bail!(
                    "module {name} ({}) depends on {d}, which is neither a module nor built in",
                    entry.relpath
                );
            }
        }
        for s in &entry.info.softdep.pre {
            for m in self.softdep_targets(name, "pre", s, cl) {
                cl.reasons
                    .entry(m.clone())
                    .or_insert_with(|| Reason::SoftdepPre(name.to_string()));
                match state.get(m.as_str()) {
                    None => self.visit(&m, state, cl)?,
                    Some(1) => cl.notes.push(format!(
                        "softdep cycle: {name} pre-depends on {m}, which needs {name}; ordering ignored"
                    )),
                    _ => {}
                }
            }
        }
        state.insert(name.to_string(), 2);
        cl.modules.push(name.to_string());
        for s in &entry.info.softdep.post {
            for m in self.softdep_targets(name, "post", s, cl) {
                cl.reasons
                    .entry(m.clone())
                    .or_insert_with(|| Reason::SoftdepPost(name.to_string()));
                if !state.contains_key(m.as_str()) {
                    self.visit(&m, state, cl)?;
                }
            }
        }
        Ok(())
    }

    fn softdep_targets(&self, user: &str, kind: &str, s: &str, cl: &mut Closure) -> Vec<String> {
        let r = self.resolve(s);
        if r.is_empty() {
            cl.notes.push(format!(
                "softdep {kind} {s} of {user}: no module or alias provides it; ignored"
            ));
        }
        r.modules.into_iter().filter(|m| m != user).collect()
    }

    /// All transitive hard dependencies of `name`, in kmod's `modules.dep` order (a module's
    /// dependencies appear after it, so loading the list from the end backwards works).
    pub fn transitive_deps(&self, name: &str) -> Result<Vec<String>> {
        fn post(
            idx: &ModuleIndex,
            n: &str,
            seen: &mut BTreeSet<String>,
            out: &mut Vec<String>,
        ) -> Result<()> {
            let e = idx
                .modules
                .get(n)
                .with_context(|| format!("module {n} not in index"))?;
            for d in &e.info.depends {
                if idx.modules.contains_key(d) && seen.insert(d.clone()) {
                    post(idx, d, seen, out)?;
                    out.push(d.clone());
                }
            }
            Ok(())
        }
        let name = normalize_module_name(name);
        let mut seen = BTreeSet::new();
        seen.insert(name.clone());
        let mut out = Vec::new();
        post(self, &name, &mut seen, &mut out)?;
        out.reverse();
        Ok(out)
    }

    fn included(&self, modules: &[String]) -> Result<Vec<&ModuleEntry>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for m in modules {
            let e = self
                .get(m)
                .with_context(|| format!("module {m} is not in the index"))?;
            if seen.insert(e.name.clone()) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Writes `modules.dep` for `modules`: `relpath: dep1 dep2 …` (paths as in the image, see
    /// [`ModuleEntry::image_relpath`]) with all transitive hard
    /// dependencies in kmod's order (load from the end backwards, then the module). Every
    /// dependency must itself be in `modules`.
    pub fn write_modules_dep<W: Write>(&self, modules: &[String], mut out: W) -> Result<()> {
        let set = self.included(modules)?;
        let names: BTreeSet<&str> = set.iter().map(|e| e.name.as_str()).collect();
        for e in &set {
            let deps = self.transitive_deps(&e.name)?;
            let mut line = format!("{}:", e.image_relpath());
            for d in &deps {
                if !names.contains(d.as_str()) {
                    bail!(
                        "modules.dep: {} needs {d}, which is not in the module set",
                        e.name
                    );
                }
                line.push(' ');
                line.push_str(&self.modules[d].image_relpath());
            }
            line.push('\n');
            out.write_all(line.as_bytes())
                .context("writing modules.dep")?;
        }
        Ok(())
    }

    /// Writes `modules.alias` for `modules`: `alias <pattern> <module>` per alias (patterns as
    /// found in the modules, not normalised).
    pub fn write_modules_alias<W: Write>(&self, modules: &[String], mut out: W) -> Result<()> {
        out.write_all(b"# Aliases extracted from modules themselves.\n")
            .context("writing modules.alias")?;
        for e in self.included(modules)? {
            for a in &e.info.aliases {
                writeln!(out, "alias {a} {}", e.name).context("writing modules.alias")?;
            }
        }
        Ok(())
    }

    /// Writes `modules.softdep` for `modules`: `softdep <module> pre: … post: …` for each
    /// module with soft dependencies (names as found in the module, possibly aliases).
    pub fn write_modules_softdep<W: Write>(&self, modules: &[String], mut out: W) -> Result<()> {
        out.write_all(b"# Soft dependencies extracted from modules themselves.\n")
            .context("writing modules.softdep")?;
        for e in self.included(modules)? {
            if !e.info.softdep.is_empty() {
                writeln!(out, "softdep {} {}", e.name, e.info.softdep.to_line())
                    .context("writing modules.softdep")?;
            }
        }
        Ok(())
    }
}

fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let rd = fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    for ent in rd {
        let ent = ent.with_context(|| format!("listing {}", dir.display()))?;
        let ft = ent
            .file_type()
            .with_context(|| format!("stat {}", ent.path().display()))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let child = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        if ft.is_dir() {
            walk(root, &child, out)?;
        } else if ft.is_file() && is_module_file(name) {
            out.push(child);
        }
    }
    Ok(())
}

/// One line of a parsed `modules.dep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepEntry {
    /// Module path relative to the modules directory.
    pub path: String,
    /// Transitive dependency paths in file order (kmod order: load from the end backwards).
    pub deps: Vec<String>,
}

/// Parsed `modules.dep`, keyed by normalised module name.
pub type DepMap = BTreeMap<String, DepEntry>;

/// Parses `modules.dep` text. Blank lines and `#` comments are skipped; a non-empty line without
/// `:` is an error naming the line number.
pub fn parse_modules_dep(text: &str) -> Result<DepMap> {
    let mut map = DepMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((path, deps)) = line.split_once(':') else {
            bail!("modules.dep line {}: missing ':' in {line:?}", i + 1);
        };
        let path = path.trim();
        if path.is_empty() {
            bail!("modules.dep line {}: empty module path", i + 1);
        }
        map.insert(
            module_name_from_path(path),
            DepEntry {
                path: path.to_string(),
                deps: deps.split_whitespace().map(str::to_string).collect(),
            },
        );
    }
    Ok(map)
}

/// Paths to load, in order, to load `module` (a name, `-`/`_` equivalent, or a path ending in
/// `.ko`): its dependencies (the `modules.dep` list read from the end backwards), then the
/// module itself. `None` if the module is not in `dep_map` (e.g. it is built in or unknown).
pub fn load_order(dep_map: &DepMap, module: &str) -> Option<Vec<String>> {
    let name = if module.contains('/') || module.contains(".ko") {
        module_name_from_path(module)
    } else {
        normalize_module_name(module)
    };
    let e = dep_map.get(&name)?;
    let mut out: Vec<String> = e.deps.iter().rev().cloned().collect();
    out.push(e.path.clone());
    Some(out)
}

/// One `alias <pattern> <module>` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasEntry {
    /// fnmatch pattern as written.
    pub pattern: String,
    /// Module name.
    pub module: String,
}

/// Parses `modules.alias` text; lines that are not `alias <pattern> <module>` are skipped.
pub fn parse_modules_alias(text: &str) -> Vec<AliasEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("alias") {
            continue;
        }
        let (Some(p), Some(m), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        out.push(AliasEntry {
            pattern: p.to_string(),
            module: normalize_module_name(m),
        });
    }
    out
}

/// Modules whose alias pattern matches `name` (a modalias string such as
/// `pci:v00008086d…`, or an alias such as `fs-vfat`), in file order without duplicates. Both
/// sides are normalised like kmod does (`-` → `_` outside brackets) before [`fnmatch`].
pub fn lookup_alias(aliases: &[AliasEntry], name: &str) -> Vec<String> {
    let key = normalize_alias(name);
    let mut out: Vec<String> = Vec::new();
    for a in aliases {
        if fnmatch(&normalize_alias(&a.pattern), &key) && !out.contains(&a.module) {
            out.push(a.module.clone());
        }
    }
    out
}

/// Parses `modules.softdep` text (`softdep <module> pre: … post: …`) into a map keyed by
/// normalised module name; repeated lines for one module are merged.
pub fn parse_softdep(text: &str) -> BTreeMap<String, SoftDep> {
    let mut out: BTreeMap<String, SoftDep> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("softdep") else {
            continue;
        };
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let rest = rest.trim_start();
        let Some((module, deps)) = rest.split_once(char::is_whitespace) else {
            continue;
        };
        out.entry(normalize_module_name(module))
            .or_default()
            .merge(&SoftDep::parse(deps));
    }
    out
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::modinfo::testutil::fake_ko;

    /// A fake module tree: (relpath, modinfo fields).
    pub const FAKE_TREE: &[(&str, &[&str])] = &[
        (
            "kernel/drivers/ata/ahci.ko",
            &[
                "name=ahci",
                "depends=libahci,libata",
                "alias=pci:v*d*sv*sd*bc01sc06i01*",
            ],
        ),
        (
            "kernel/drivers/ata/libahci.ko",
            &["name=libahci", "depends=libata"],
        ),
        (
            "kernel/drivers/ata/libata.ko",
            &["name=libata", "depends=scsi_mod"],
        ),
        (
            "kernel/drivers/scsi/scsi_mod.ko",
            &["name=scsi_mod", "depends=scsi_common"],
        ),
        (
            "kernel/drivers/scsi/scsi_common.ko",
            &["name=scsi_common", "depends="],
        ),
        (
            "kernel/fs/ext4/ext4.ko",
            &[
                "name=ext4",
                "depends=jbd2,mbcache,crc16",
                "softdep=pre: crc32c",
                "alias=fs-ext4",
            ],
        ),
        (
            "kernel/fs/jbd2/jbd2.ko",
            &["name=jbd2", "depends=crc32c_generic"],
        ),
        ("kernel/fs/mbcache.ko", &["name=mbcache", "depends="]),
        (
            "kernel/crypto/crc32c_generic.ko",
            &[
                "name=crc32c_generic",
                "alias=crypto-crc32c",
                "alias=crc32c",
                "depends=",
            ],
        ),
        (
            "kernel/arch/x86/crypto/crc32c-intel.ko",
            &["name=crc32c_intel", "alias=crypto-crc32c", "depends="],
        ),
        (
            "kernel/fs/nls/nls_cp437.ko",
            &["name=nls_cp437", "alias=nls-cp437"],
        ),
        ("kernel/fs/nls/nls_ascii.ko", &["name=nls_ascii"]),
        ("kernel/fs/fat/fat.ko", &["name=fat", "depends="]),
        (
            "kernel/fs/fat/vfat.ko",
            &[
                "name=vfat",
                "depends=fat",
                "alias=fs-vfat",
                "softdep=pre: nls-missing post: nls_ascii",
            ],
        ),
    ];

    /// Writes the fake tree to `dir` (a `lib/modules/<kver>` directory).
    pub fn write_fake_tree(dir: &Path) {
        for (rel, fields) in FAKE_TREE {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, fake_ko(fields)).unwrap();
        }
        fs::write(
            dir.join("modules.builtin"),
            "kernel/lib/crc16.ko\nkernel/fs/efivarfs/efivarfs.ko\n",
        )
        .unwrap();
        fs::write(
            dir.join("modules.builtin.modinfo"),
            b"efivarfs.alias=fs-efivarfs\0efivarfs.license=GPL\0crc16.license=GPL\0".as_slice(),
        )
        .unwrap();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::testutil::write_fake_tree;
    use super::*;

    fn idx() -> (tempfile::TempDir, ModuleIndex) {
        let d = tempfile::tempdir().unwrap();
        write_fake_tree(d.path());
        // A symlinked directory must not be followed.
        std::os::unix::fs::symlink("/", d.path().join("build")).unwrap();
        let i = ModuleIndex::scan(d.path()).unwrap();
        (d, i)
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn assert_topological(i: &ModuleIndex, order: &[String]) {
        let pos: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(p, n)| (n.as_str(), p))
            .collect();
        for n in order {
            for d in &i.get(n).unwrap().info.depends {
                if let Some(&pd) = pos.get(d.as_str()) {
                    assert!(
                        pd < pos[n.as_str()],
                        "{d} must come before {n} in {order:?}"
                    );
                } else {
                    assert!(i.is_builtin(d), "{d} (dep of {n}) missing from {order:?}");
                }
            }
        }
    }

    #[test]
    fn scan_finds_modules() {
        let (_d, i) = idx();
        assert_eq!(i.len(), 14);
        assert_eq!(
            i.get("crc32c-intel").unwrap().relpath,
            "kernel/arch/x86/crypto/crc32c-intel.ko"
        );
        assert!(i.is_builtin("efivarfs"));
        assert!(i.is_builtin("crc16"));
        assert!(i.get("efivarfs").is_none());
    }

    #[test]
    fn closure_orders_deps_first() {
        let (_d, i) = idx();
        let cl = i.resolve_closure(&s(&["ahci", "ext4"])).unwrap();
        assert_eq!(
            cl.modules,
            s(&[
                "scsi_common",
                "scsi_mod",
                "libata",
                "libahci",
                "ahci",
                "crc32c_generic",
                "jbd2",
                "mbcache",
                "ext4"
            ])
        );
        assert_topological(&i, &cl.modules);
        assert_eq!(cl.reasons["ahci"], Reason::Wanted);
        assert_eq!(cl.reasons["libata"], Reason::Dependency("ahci".into()));
        assert_eq!(
            cl.reasons["scsi_common"],
            Reason::Dependency("scsi_mod".into())
        );
        // softdep pre: crc32c is an alias of crc32c_generic, which jbd2 already pulled in
        assert_eq!(
            cl.reasons["crc32c_generic"],
            Reason::Dependency("jbd2".into())
        );
        assert!(cl.notes.is_empty(), "{:?}", cl.notes);
    }

    #[test]
    fn closure_softdeps_and_notes() {
        let (_d, i) = idx();
        let cl = i.resolve_closure(&s(&["vfat", "efivarfs"])).unwrap();
        assert_eq!(cl.modules, s(&["fat", "vfat", "nls_ascii"]));
        assert_eq!(cl.reasons["nls_ascii"], Reason::SoftdepPost("vfat".into()));
        assert!(
            cl.notes.iter().any(|n| n.contains("nls-missing")),
            "{:?}",
            cl.notes
        );
        assert!(
            cl.notes
                .iter()
                .any(|n| n.contains("efivarfs is built into")),
            "{:?}",
            cl.notes
        );
        // Alias softdep resolving to several modules takes all of them.
        assert_eq!(
            i.resolve("crypto-crc32c").modules,
            s(&["crc32c_generic", "crc32c_intel"])
        );
        assert_eq!(i.resolve("crypto_crc32c").modules.len(), 2);
        assert_eq!(i.resolve("fs-efivarfs").builtin, s(&["efivarfs"]));
    }

    #[test]
    fn closure_globs_and_aliases() {
        let (_d, i) = idx();
        let cl = i
            .resolve_closure(&s(&["kernel/drivers/ata/*", "nls_*", "fs-vfat"]))
            .unwrap();
        let set: BTreeSet<_> = cl.modules.iter().cloned().collect();
        for m in [
            "ahci",
            "libahci",
            "libata",
            "scsi_mod",
            "scsi_common",
            "nls_cp437",
            "nls_ascii",
            "vfat",
            "fat",
        ] {
            assert!(set.contains(m), "{m} missing: {:?}", cl.modules);
        }
        assert_eq!(cl.reasons["libata"], Reason::Wanted);
        assert_eq!(cl.reasons["vfat"], Reason::Wanted);
        assert_topological(&i, &cl.modules);
        assert_eq!(i.closure(&s(&["nls-cp437"])).unwrap(), s(&["nls_cp437"]));
    }

    #[test]
    fn exclusions_and_wanted_by() {
        let (_d, i) = idx();
        let cl = i
            .resolve_closure(&s(&["kernel/drivers/ata/*", "!kernel/drivers/ata/libahci.ko", "!nls_*", "nls_cp437", "!nosuch*"]))
            .unwrap();
        // libahci is left out as wanted, but ahci needs it: in, as a dependency, with a note.
        assert_eq!(cl.reasons["libahci"], Reason::Dependency("ahci".into()));
        assert!(cl.notes.iter().any(|n| n.contains("libahci is excluded")), "{:?}", cl.notes);
        assert_eq!(cl.wanted_by["ahci"], "kernel/drivers/ata/*");
        assert!(!cl.wanted_by.contains_key("libahci"));
        // An explicitly named module that an exclusion matches stays out (and is no error).
        assert!(!cl.modules.contains(&"nls_cp437".to_string()), "{:?}", cl.modules);
        assert_topological(&i, &cl.modules);
    }

    #[test]
    fn unknown_wanted_is_error_naming_them() {
        let (_d, i) = idx();
        let e = format!(
            "{:#}",
            i.closure(&s(&["ahci", "nosuch", "kernel/none/*"]))
                .unwrap_err()
        );
        assert!(e.contains("nosuch") && e.contains("kernel/none/*"), "{e}");
    }

    #[test]
    fn missing_hard_dep_is_error() {
        let mut e = ModuleEntry {
            name: "a".into(),
            relpath: "kernel/a.ko".into(),
            size: 1,
            info: ModInfo::default(),
        };
        e.info.add_field("depends", "ghost");
        let i = ModuleIndex::from_parts(vec![e], vec![], BTreeMap::new());
        let err = format!("{:#}", i.closure(&s(&["a"])).unwrap_err());
        assert!(
            err.contains("ghost") && err.contains("kernel/a.ko"),
            "{err}"
        );
    }

    #[test]
    fn softdep_cycle_is_noted_not_fatal() {
        let mk = |n: &str, sd: &str| {
            let mut e = ModuleEntry {
                name: n.into(),
                relpath: format!("kernel/{n}.ko"),
                size: 1,
                info: ModInfo::default(),
            };
            e.info.add_field("softdep", sd);
            e
        };
        let i = ModuleIndex::from_parts(
            vec![mk("a", "pre: b"), mk("b", "pre: a")],
            vec![],
            BTreeMap::new(),
        );
        let cl = i.resolve_closure(&s(&["a"])).unwrap();
        assert_eq!(cl.modules, s(&["b", "a"]));
        assert!(cl.notes.iter().any(|n| n.contains("cycle")));
    }

    #[test]
    fn text_files_roundtrip() {
        let (_d, i) = idx();
        let set = i.closure(&s(&["ahci", "ext4", "vfat"])).unwrap();
        let mut dep = Vec::new();
        i.write_modules_dep(&set, &mut dep).unwrap();
        let dep = String::from_utf8(dep).unwrap();
        assert!(dep.contains(
            "kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko\n"
        ), "{dep}");
        assert!(dep.contains("kernel/drivers/scsi/scsi_common.ko:\n"));
        let map = parse_modules_dep(&dep).unwrap();
        assert_eq!(map.len(), set.len());
        let lo = load_order(&map, "ahci").unwrap();
        assert_eq!(
            lo,
            s(&[
                "kernel/drivers/scsi/scsi_common.ko",
                "kernel/drivers/scsi/scsi_mod.ko",
                "kernel/drivers/ata/libata.ko",
                "kernel/drivers/ata/libahci.ko",
                "kernel/drivers/ata/ahci.ko"
            ])
        );
        assert_eq!(
            load_order(&map, "kernel/fs/ext4/ext4.ko")
                .unwrap()
                .last()
                .unwrap(),
            "kernel/fs/ext4/ext4.ko"
        );
        assert!(load_order(&map, "nosuch").is_none());
        // Each load order respects the dependency relation.
        for name in &set {
            let lo = load_order(&map, name).unwrap();
            let names: Vec<String> = lo.iter().map(|p| module_name_from_path(p)).collect();
            assert_topological(&i, &names);
        }

        // Dependencies outside the set are refused.
        assert!(i.write_modules_dep(&s(&["ahci"]), Vec::new()).is_err());

        let mut al = Vec::new();
        i.write_modules_alias(&set, &mut al).unwrap();
        let al = String::from_utf8(al).unwrap();
        assert!(al.contains("alias fs-vfat vfat\n"));
        let aliases = parse_modules_alias(&al);
        assert_eq!(
            lookup_alias(
                &aliases,
                "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"
            ),
            s(&["ahci"])
        );
        assert_eq!(lookup_alias(&aliases, "fs_vfat"), s(&["vfat"]));
        assert!(lookup_alias(&aliases, "pci:v1").is_empty());

        let mut sd = Vec::new();
        i.write_modules_softdep(&set, &mut sd).unwrap();
        let sd = String::from_utf8(sd).unwrap();
        assert!(sd.contains("softdep ext4 pre: crc32c\n"), "{sd}");
        assert!(
            sd.contains("softdep vfat pre: nls-missing post: nls_ascii\n"),
            "{sd}"
        );
        let parsed = parse_softdep(&sd);
        assert_eq!(parsed["vfat"].post, s(&["nls_ascii"]));
        assert_eq!(parsed["ext4"].pre, s(&["crc32c"]));
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn parsers_tolerate_junk() {
        assert!(parse_modules_dep("no colon here\n").is_err());
        let m = parse_modules_dep("# c\n\nkernel/a-b.ko:\nkernel/c.ko: kernel/a-b.ko\n").unwrap();
        assert_eq!(m["a_b"].deps.len(), 0);
        assert_eq!(
            load_order(&m, "c").unwrap(),
            s(&["kernel/a-b.ko", "kernel/c.ko"])
        );
        assert_eq!(load_order(&m, "a-b").unwrap(), s(&["kernel/a-b.ko"]));
        let a = parse_modules_alias("# x\nalias a b\nalias onlyone\nblah a b\nalias x y z\n");
        assert_eq!(
            a,
            vec![AliasEntry {
                pattern: "a".into(),
                module: "b".into()
            }]
        );
        let sd = parse_softdep(
            "softdep a pre: b\nsoftdepx y pre: z\nsoftdep a post: c\nsoftdep lonely\n",
        );
        assert_eq!(sd.len(), 1);
        assert_eq!(
            sd["a"],
            SoftDep {
                pre: s(&["b"]),
                post: s(&["c"])
            }
        );
    }

    #[test]
    fn scan_errors_name_path() {
        let d = tempfile::tempdir().unwrap();
        let e = format!(
            "{:#}",
            ModuleIndex::scan(&d.path().join("nope")).unwrap_err()
        );
        assert!(e.contains("nope"), "{e}");
        fs::create_dir_all(d.path().join("kernel")).unwrap();
        fs::write(d.path().join("kernel/bad.ko"), b"garbage").unwrap();
        let e = format!("{:#}", ModuleIndex::scan(d.path()).unwrap_err());
        assert!(e.contains("bad.ko"), "{e}");
    }

    /// The module list the rescue image needs, used by the real-kernel tests.
    pub(crate) const RESCUE_SET: &[&str] = &[
        "virtio_blk",
        "nvme",
        "ahci",
        "sd_mod",
        "usb_storage",
        "uas",
        "xhci_pci",
        "virtio_scsi",
        "efivarfs",
        "vfat",
        "ext4",
        "nls_cp437",
        "nls_ascii",
    ];

    #[test]
    #[ignore = "needs scripts/fetch-kernel"]
    fn real_kernel_scan_and_closure() {
        let kt = crate::testkernel::kernel_tree();
        let t0 = std::time::Instant::now();
        let i = ModuleIndex::scan(&kt.modules_dir).unwrap();
        eprintln!("scanned {} modules in {:?}", i.len(), t0.elapsed());
        assert!(i.len() > 1000, "only {} modules", i.len());
        for e in i.modules() {
            if let Some(n) = &e.info.name {
                assert_eq!(normalize_module_name(n), e.name, "{}", e.relpath);
            }
            assert!(
                e.info
                    .vermagic
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(&kt.kver),
                "{}",
                e.relpath
            );
        }
        let ext4 = i.get("ext4").unwrap();
        assert!(ext4.info.depends.contains(&"jbd2".to_string()));
        assert!(ext4.info.aliases.contains(&"fs-ext4".to_string()));

        let cl = i.resolve_closure(&s(RESCUE_SET)).unwrap();
        assert_topological(&i, &cl.modules);
        for m in [
            "libahci",
            "libata",
            "scsi_mod",
            "jbd2",
            "mbcache",
            "fat",
            "virtio_blk",
            "nvme_core",
            "usb_storage",
            "xhci_hcd",
        ] {
            assert!(
                cl.modules.contains(&m.to_string()),
                "{m} missing from {:?}",
                cl.modules
            );
        }
        let total: u64 = cl.modules.iter().map(|m| i.get(m).unwrap().size).sum();
        eprintln!("closure: {} modules, {} bytes", cl.modules.len(), total);
        for m in &cl.modules {
            eprintln!("  {m:24} {}", cl.reasons[m]);
        }
        for n in &cl.notes {
            eprintln!("  note: {n}");
        }
        // Hard deps before users, softdep pre before the module.
        let pos = |n: &str| cl.modules.iter().position(|m| m == n).unwrap();
        assert!(pos("libata") < pos("libahci") && pos("libahci") < pos("ahci"));
        assert!(pos("scsi_mod") < pos("sd_mod"));
        assert!(pos("jbd2") < pos("ext4") && pos("mbcache") < pos("ext4"));
        assert!(pos("fat") < pos("vfat"));
        assert!(pos("usb_storage") < pos("uas"));

        let mut dep = Vec::new();
        i.write_modules_dep(&cl.modules, &mut dep).unwrap();
        let map = parse_modules_dep(std::str::from_utf8(&dep).unwrap()).unwrap();
        let sd = map["sd_mod"]
            .deps
            .iter()
            .map(|p| module_name_from_path(p))
            .collect::<Vec<_>>();
        assert!(
            sd.contains(&"scsi_mod".to_string()) && sd.contains(&"scsi_common".to_string()),
            "{sd:?}"
        );
    }
}
