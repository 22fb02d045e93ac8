//! Arrows point one way inside the layer crate: no module reaches back (directly or through
//! others) to a module that uses it. Read from the sources, so a new `use` that closes a loop
//! fails here with the loop named. (`lib.rs` only re-exports and is left out.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `service/carrier.rs` → `service::carrier`; `redis/mod.rs` → `redis`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// Every path written after `crate::` or `super::` (brace groups expanded one level), as
/// absolute module paths.
fn referenced_paths(module: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (prefix, base) in [("crate::", String::new()), ("super::", parent(module))] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            let preceded_by_ident = rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
            rest = &rest[i + prefix.len()..];
            if preceded_by_ident {
                continue;
            }
            let mut base = base.clone();
            while prefix == "super::"
                && let Some(up) = rest.strip_prefix("super::")
            {
                base = parent(&base);
                rest = up;
            }
            let path_of = |s: &str| -> String {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect::<String>()
                    .trim_end_matches(':')
                    .to_owned()
            };
            let join = |p: String| {
                if base.is_empty() {
                    p
                } else {
                    format!("{base}::{p}")
                }
            };
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let p = path_of(item.trim());
                    if !p.is_empty() {
                        out.push(join(p));
                    }
                }
            } else {
                let p = path_of(rest);
                if !p.is_empty() {
                    out.push(join(p));
                }
            }
        }
    }
    out
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_owned())
}

/// The longest known module that `path` starts with (`service::routes::PathPattern` →
/// `service::routes`); `None` for a re-export from the crate root.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").collect();
    while !segments.is_empty() {
        let candidate = segments.join("::");
        if modules.contains(&candidate) {
            return Some(candidate);
        }
        segments.pop();
    }
    None
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_layer_crate_has_no_module_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read");
        let uses = graph.entry(module.clone()).or_default();
        for path in referenced_paths(&module, &text) {
            if let Some(target) = resolve(&path, &modules)
                && target != module
                && !target.starts_with(&format!("{module}::"))
                && !module.starts_with(&format!("{target}::"))
            {
                uses.insert(target);
            }
        }
    }
    assert!(
        graph.values().map(BTreeSet::len).sum::<usize>() > 20,
        "the scan found too few uses to mean anything: {graph:?}"
    );
    assert_eq!(find_cycle(&graph), None, "a module cycle in iam-join-tower");
}

#[test]
fn the_scan_sees_a_cycle_when_there_is_one() {
    let modules: BTreeSet<String> = ["a", "b", "c::d"].map(String::from).into();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in [
        ("a", "use crate::b::Thing;\n"),
        (
            "b",
            "use crate::{c::d::Other, x};\n// use crate::a::Commented;\n",
        ),
        ("c::d", "fn f() { super::super::a::g(); }\n"),
    ] {
        let uses: BTreeSet<String> = referenced_paths(module, text)
            .iter()
            .filter_map(|p| resolve(p, &modules))
            .collect();
        graph.insert(module.to_owned(), uses);
    }
    let cycle = find_cycle(&graph).expect("a → b → c::d → a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}
