//! `gate-rules` keeps its module graph acyclic: the shared vocabulary lives in `vocab`, a
//! leaf, and every other module depends only on modules "below" it. This test reads the
//! non-test, non-comment source of each top-level module, collects the top-level modules it
//! names through `crate::…` (and `super::…` from a top-level file), and fails on a cycle,
//! naming the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The identifiers following `prefix` (`crate::a`, `crate::{a, b::c}`).
fn named_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        } else {
            names.insert(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    names
}

#[test]
fn gate_rules_has_no_module_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text[..text.find("#[cfg(test)]").unwrap_or(text.len())]
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut deps = named_after(&code, "crate::");
        if rel.components().count() == 1 {
            deps.extend(named_after(&code, "super::"));
        }
        let entry = graph.entry(top.clone()).or_default();
        for dep in deps.into_iter().filter(|d| *d != top) {
            entry
                .entry(dep)
                .or_default()
                .insert(rel.display().to_string());
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    assert!(
        modules.contains("vocab") && modules.len() > 5,
        "{modules:?}"
    );

    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            let cycle = &path[at..];
            let files: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().skip(1).chain(std::iter::once(&cycle[0])))
                .map(|(a, b)| format!("{a} -> {b} ({:?})", graph[a][b]))
                .collect();
            panic!("module cycle:\n  {}", files.join("\n  "));
        }
        path.push(m.to_string());
        for dep in graph.get(m).into_iter().flat_map(|d| d.keys()) {
            if graph.contains_key(dep) {
                visit(dep, graph, path, done);
            }
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in &modules {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    assert!(
        graph["vocab"].keys().all(|d| d == "duration"),
        "vocab is a leaf (it may name only `duration`): {:?}",
        graph["vocab"]
    );
}
