//! The import graph of `src/`'s top-level folders (and top-level files) has no cycles, and
//! follows the bottom-up order the crate documentation (src/lib.rs) gives: a folder uses
//! only folders listed above it, or on its own row.
//!
//! An edge is any `crate::<folder>` path in non-test code (`#[cfg(test)]` items and
//! comments are left out: tests may reach anywhere, and doc links are not imports).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file under `src/` belongs to (`None` for lib.rs).
fn node_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    if first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without the items under `#[cfg(test)]` (or any
/// `#[cfg(...test...)]`).
fn production_code(text: &str) -> String {
    let no_comments: String = text
        .lines()
        .map(|l| match l.find("//") {
            // `//` inside a string literal ("http://…") is rare in this crate and only
            // shortens a line.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = no_comments.as_bytes();
    let mut out = String::with_capacity(no_comments.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &no_comments[i..];
        if rest.starts_with("#[cfg(") {
            let end = rest.find(']').unwrap_or(rest.len());
            if rest[..end].contains("test") {
                // Skip the attribute and the item it guards: up to its `;` or its
                // balanced `{ … }`, whichever comes first.
                let mut j = i + end + 1;
                let mut depth = 0usize;
                while j < bytes.len() {
                    match bytes[j] {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                j += 1;
                                break;
                            }
                        }
                        b';' if depth == 0 => {
                            j += 1;
                            break;
                        }
                        _ => {}
                    }
                    j += 1;
                }
                i = j;
                continue;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut nodes = BTreeSet::new();
    for f in &files {
        if let Some(n) = node_of(f) {
            nodes.insert(n);
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(from) = node_of(f) else { continue };
        let code = production_code(&fs::read_to_string(f).unwrap());
        let set = edges.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != from && nodes.contains(&name) {
                set.insert(name);
            }
        }
    }
    edges
}

/// The layers of the lib.rs table, bottom first: each row's [`name`]s.
fn documented_layers() -> Vec<Vec<String>> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter(|l| l.starts_with("//! | [`"))
        .map(|l| {
            let first_cell = l.trim_start_matches("//! | ").split(" | ").next().unwrap();
            first_cell
                .split(", ")
                .map(|n| {
                    n.trim_matches(|c| c == '[' || c == ']' || c == '`')
                        .to_string()
                })
                .collect()
        })
        .collect()
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = stack.iter().position(|s| s == n).unwrap();
                let mut cycle = stack[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

#[test]
fn folder_import_graph_has_no_cycles() {
    let edges = graph();
    assert!(edges.len() >= 10, "too few folders found: {edges:?}");
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle between folders: {}", cycle.join(" -> "));
    }
}

#[test]
fn folders_use_only_the_layers_below_them() {
    let edges = graph();
    let layers = documented_layers();
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().map(move |n| (n.as_str(), i)))
        .collect();
    for node in edges.keys() {
        assert!(
            layer_of.contains_key(node.as_str()),
            "src/{node} is missing from the folder table in src/lib.rs"
        );
    }
    let mut wrong = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if layer_of[to.as_str()] > layer_of[from.as_str()] {
                wrong.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up the table in src/lib.rs: {wrong:?}"
    );
}

#[test]
fn the_checker_sees_a_cycle_and_skips_test_code() {
    let code =
        "use crate::a::x;\n#[cfg(test)]\nmod tests { use crate::b::y; }\n// crate::c\nfn f() {}";
    let kept = production_code(code);
    assert!(kept.contains("crate::a") && !kept.contains("crate::b") && !kept.contains("crate::c"));
    assert!(kept.contains("fn f()"));
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "a"]);
}
