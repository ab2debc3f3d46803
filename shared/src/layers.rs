//! The module graph of this crate stays acyclic, and the lower layers never reach the process state.
//!
//! The graph comes from the source text: every path outside comments and `#[cfg(test)]` modules, whether
//! `crate::`, `super::`, `self::` or a `use` of a child module, is an edge from the file's module to the
//! longest module prefix of the path it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules that must not reach `state`, directly or through others.
const LOWER: &[&str] = &["config", "error", "response", "time", "db", "storage", "jwt", "ratelimit", "push", "secret"];

fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and without the `#[cfg(test)]` module at its end.
fn code_of(text: &str) -> String {
    let text = text.find("#[cfg(test)]\nmod ").map_or(text, |i| &text[..i]);
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Expands `a::{b, c::{d}}` into `a::b`, `a::c::d`.
fn expand(path: &str, out: &mut Vec<String>) {
    let path = path.trim();
    let Some(open) = path.find('{') else {
        // `a::b as c` names `a::b`.
        out.push(path.split_whitespace().next().unwrap_or_default().to_owned());
        return;
    };
    let (prefix, rest) = (&path[..open], &path[open + 1..]);
    let inner = rest.strip_suffix('}').unwrap_or(rest);
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&format!("{prefix}{}", inner[start..i].trim()), out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !inner[start..].trim().is_empty() {
        expand(&format!("{prefix}{}", inner[start..].trim()), out);
    }
}

/// Every `crate::` path of `code`, braces expanded.
fn paths_of(code: &str) -> Vec<String> {
    paths_after(code, "crate::")
}

/// Every path of `code` that begins with `start` (`crate::`, `super::`, …), without it, braces expanded.
fn paths_after(code: &str, start: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices(start) {
        // A whole path segment only: not the tail of `super::super::` or of another name.
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + start.len()..];
        let mut depth = 0;
        let end = rest
            .char_indices()
            .find(|&(_, c)| match c {
                '{' => {
                    depth += 1;
                    false
                }
                '}' if depth > 0 => {
                    depth -= 1;
                    false
                }
                c if depth > 0 => c == ';',
                c => !(c.is_alphanumeric() || c == '_' || c == ':'),
            })
            .map_or(rest.len(), |(j, _)| j);
        expand(&rest[..end], &mut out);
    }
    out
}

/// The crate-relative paths of `code` in module `module`: `crate::` paths, `super::` and `self::` ones, and
/// `use` paths that begin with a child module (`pub use pool::Conn;` in `db`).
fn resolved_paths(code: &str, module: &str, modules: &BTreeSet<String>) -> Vec<String> {
    let join = |base: &str, path: &str| if base.is_empty() { path.to_owned() } else { format!("{base}::{path}") };
    let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
    let mut out = paths_of(code);
    for path in paths_after(code, "super::") {
        let (mut base, mut rest) = (parent, path.as_str());
        while let Some(deeper) = rest.strip_prefix("super::") {
            base = base.rsplit_once("::").map_or("", |(up, _)| up);
            rest = deeper;
        }
        out.push(join(base, rest));
    }
    out.extend(paths_after(code, "self::").iter().map(|p| join(module, p)));
    for line in code.lines() {
        let line = line.trim_start();
        let Some(path) = line.strip_prefix("pub use ").or_else(|| line.strip_prefix("use ")) else { continue };
        let first = path.split("::").next().unwrap_or_default();
        if modules.contains(&join(module, first)) {
            out.extend(paths_after(line, &format!("{first}::")).iter().map(|p| join(module, &format!("{first}::{p}"))));
        }
    }
    out
}

/// The module graph of this crate.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// The module graph of the crate whose sources are in `src`.
fn graph_of(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let src = src.to_path_buf();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).filter(|m| m != "lib").collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let edges: &mut BTreeSet<String> = graph.entry(from.clone()).or_default();
        for path in resolved_paths(&code_of(&std::fs::read_to_string(file).unwrap()), &from, &modules) {
            let segments: Vec<&str> = path.split("::").collect();
            let target = (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|m| modules.contains(m));
            if let Some(to) = target
                && to != from
            {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle through `node`, if any, as the path walked.
fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    stack: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = stack.iter().position(|n| n == node) {
        let mut cycle = stack[i..].to_vec();
        cycle.push(node.to_owned());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    stack.push(node.to_owned());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(cycle) = find_cycle(graph, next, stack, done) {
            return Some(cycle);
        }
    }
    stack.pop();
    done.insert(node.to_owned());
    None
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let (mut seen, mut todo) = (BTreeSet::new(), vec![from.to_owned()]);
    while let Some(n) = todo.pop() {
        if n == to {
            return true;
        }
        if seen.insert(n.clone()) {
            todo.extend(graph.get(&n).into_iter().flatten().cloned());
        }
    }
    false
}

#[test]
fn brace_groups_and_renames_expand_to_paths() {
    assert_eq!(
        paths_of("use crate::db::{self, users::{find, UserRow}, Db};\nlet x = crate::time::now_ms();"),
        ["db::self", "db::users::find", "db::users::UserRow", "db::Db", "time::now_ms"]
    );
    assert_eq!(paths_of("pub use crate::db::users::both as receipts;"), ["db::users::both"]);
}

#[test]
fn relative_paths_resolve_from_their_module() {
    let modules: BTreeSet<String> = ["db", "db::pool", "db::group", "db::group::inner"].map(String::from).into();
    let resolved = |code: &str, module: &str| resolved_paths(code, module, &modules);
    assert_eq!(
        resolved("use super::pool::{Limits, overloaded};", "db::group"),
        ["db::pool::Limits", "db::pool::overloaded"]
    );
    assert_eq!(
        resolved("pub use pool::{Conn, Db};\nuse serde::Deserialize;", "db"),
        ["db::pool::Conn", "db::pool::Db"]
    );
    assert_eq!(resolved("let x = self::inner::f();", "db::group"), ["db::group::inner::f"]);
    assert_eq!(resolved("use super::super::pool::Conn;", "db::group::inner"), ["db::pool::Conn"]);
}

fn assert_acyclic(graph: &BTreeMap<String, BTreeSet<String>>) {
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = find_cycle(graph, node, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = graph();
    assert!(graph.contains_key("db::users") && graph["state"].contains("db"), "the graph is read: {graph:?}");
    assert_acyclic(&graph);
}

/// The local stack's modules too: its WebSocket API needs the gateway, which must not need it back.
#[test]
fn the_local_stacks_module_graph_has_no_cycle() {
    let graph = graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../local/src"));
    assert!(
        graph["ws"].contains("gateway") && graph["gateway"].contains("connections"),
        "the graph is read: {graph:?}"
    );
    assert_acyclic(&graph);
}

#[test]
fn lower_layers_do_not_reach_the_state() {
    let graph = graph();
    for module in graph.keys() {
        let lower = LOWER.iter().any(|l| module == l || module.starts_with(&format!("{l}::")));
        assert!(!(lower && reaches(&graph, module, "state")), "{module} reaches state");
    }
}
