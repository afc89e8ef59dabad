//! The rules of `docs/architecture.md`, read from the library's source so that a change that
//! breaks one fails here rather than in a later review:
//! - no file imports a name from a file that imports it back (no circles between files);
//! - the contracts (`components.rs`) import only plain API types, never an implementation;
//! - no library function returns `Result<_, String>`: errors are typed;
//! - the composition root (`peer.rs`) spawns nothing and loops over nothing: it only wires;
//! - every task is spawned through the task tracker (`tasks.rs`), so shutdown awaits them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's source (`ARCHITECTURE_SRC` points the rules at another tree, to see them
/// fail on one that breaks them).
fn src_dir() -> PathBuf {
    match std::env::var_os("ARCHITECTURE_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../src-tauri/src"),
    }
}

/// Every library source file (binaries and unit-test files excluded), as its module path.
fn library_files() -> BTreeMap<Vec<String>, String> {
    let mut out = BTreeMap::new();
    walk(&src_dir(), &mut Vec::new(), &mut out);
    out
}

fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut BTreeMap<Vec<String>, String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if prefix.is_empty() && name == "bin" {
                continue;
            }
            prefix.push(name);
            walk(&path, prefix, out);
            prefix.pop();
        } else if path.extension().is_some_and(|x| x == "rs") {
            if name == "tests" || name == "fake" {
                continue; // unit tests and test doubles
            }
            let mut module = prefix.clone();
            if name != "mod" && name != "lib" {
                module.push(name);
            }
            out.insert(
                module,
                strip_tests(&std::fs::read_to_string(&path).unwrap()),
            );
        }
    }
}

/// The source without comments, string literals and `#[cfg(test)]` modules.
fn strip_tests(src: &str) -> String {
    let code = match src.find("#[cfg(test)]\nmod tests {") {
        Some(i) => &src[..i],
        None => src,
    };
    let mut out = String::with_capacity(code.len());
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Expands a use tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or("").trim().to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// The files that `module` imports names from (`crate::…`, `super::…`, `self::…` and child
/// module paths, in `use` items or inline), each resolved to the longest module path that
/// is a file.
fn imports(
    module: &[String],
    src: &str,
    files: &BTreeMap<Vec<String>, String>,
) -> BTreeSet<Vec<String>> {
    let mut paths: Vec<String> = Vec::new();
    let mut rest_of_code = String::new();
    let mut chars = src;
    while !chars.is_empty() {
        let at_use = ["pub use ", "pub(crate) use ", "use "]
            .iter()
            .find_map(|p| chars.strip_prefix(p));
        match at_use {
            Some(r) if rest_of_code.is_empty() || rest_of_code.ends_with('\n') => {
                let end = r.find(';').unwrap_or(r.len());
                paths.extend(expand(&r[..end]));
                chars = &r[end..];
            }
            _ => {
                let c = chars.chars().next().unwrap();
                rest_of_code.push(c);
                chars = &chars[c.len_utf8()..];
            }
        }
    }
    paths.extend(
        rest_of_code
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .filter(|w| w.starts_with("crate::") || w.starts_with("super::"))
            .map(str::to_string),
    );
    let mut out = BTreeSet::new();
    for path in paths {
        let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let mut base: Vec<String> = match segs.first().copied() {
            Some("crate") => {
                segs.remove(0);
                Vec::new()
            }
            Some("super") => {
                let mut b = module.to_vec();
                while segs.first() == Some(&"super") {
                    segs.remove(0);
                    b.pop();
                }
                b
            }
            Some("self") => {
                segs.remove(0);
                module.to_vec()
            }
            // A child module (`pub use network::X` in a mod.rs), else an external crate.
            _ => module.to_vec(),
        };
        let mut best: Option<Vec<String>> = None;
        if !base.is_empty() && base != module {
            best = Some(base.clone());
        }
        for seg in segs {
            base.push(seg.to_string());
            if files.contains_key(&base) {
                best = Some(base.clone());
            }
        }
        if let Some(b) = best.filter(|b| b.as_slice() != module && files.contains_key(b)) {
            out.insert(b);
        }
    }
    out
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_file_imports_from_a_file_that_imports_it_back() {
    let files = library_files();
    let graph: BTreeMap<_, _> = files
        .iter()
        .map(|(m, src)| (m.clone(), imports(m, src, &files)))
        .collect();
    let mut circles = Vec::new();
    for (a, deps) in &graph {
        for b in deps {
            if a < b && graph.get(b).is_some_and(|d| d.contains(a)) {
                circles.push(format!("{} <-> {}", name(a), name(b)));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files importing each other: {circles:#?}"
    );
}

#[test]
fn contracts_import_no_implementation() {
    let files = library_files();
    let contracts = vec!["components".to_string()];
    let allowed: BTreeSet<Vec<String>> = [vec!["types".to_string()]].into();
    let src = files.get(&contracts).expect("src-tauri/src/components.rs");
    let bad: Vec<String> = imports(&contracts, src, &files)
        .difference(&allowed)
        .map(|m| name(m))
        .collect();
    assert!(
        bad.is_empty(),
        "components.rs imports from implementations: {bad:?}"
    );
}

#[test]
fn no_library_function_returns_a_string_error() {
    let mut found = Vec::new();
    for (m, src) in library_files() {
        for line in src.lines() {
            let compact: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some(i) = compact.find("Result<") {
                let rest = &compact[i..];
                // The error type is what follows the last top-level comma.
                let mut depth = 0;
                let mut last_comma = None;
                for (j, c) in rest.char_indices() {
                    match c {
                        '<' => depth += 1,
                        '>' => {
                            depth -= 1;
                            if depth == 0 {
                                if let Some(k) = last_comma {
                                    let err: &str = rest[k + 1..j].trim();
                                    if err == "String" {
                                        found.push(format!("{}: {compact}", name(&m)));
                                    }
                                }
                                break;
                            }
                        }
                        ',' if depth == 1 => last_comma = Some(j),
                        _ => {}
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "Result<_, String> in the library: {found:#?}"
    );
}

#[test]
fn the_composition_root_only_wires() {
    let files = library_files();
    let peer = files.get(&vec!["peer".to_string()]).expect("peer.rs");
    for forbidden in ["tokio::spawn", "loop {", "while ", "select!"] {
        assert!(
            !peer.contains(forbidden),
            "peer.rs holds behaviour ({forbidden}); it belongs to a component"
        );
    }
}

#[test]
fn every_task_is_spawned_through_the_task_tracker() {
    let mut found = Vec::new();
    for (m, src) in library_files() {
        if m == ["tasks"] {
            continue;
        }
        if src.contains("tokio::spawn(") || src.contains("task::spawn(") {
            found.push(name(&m));
        }
    }
    assert!(
        found.is_empty(),
        "untracked tokio::spawn in {found:?}: use tasks::Tasks::spawn so shutdown awaits it"
    );
}
