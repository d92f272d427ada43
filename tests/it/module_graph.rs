//! The crate's modules import each other as a tree: each can be read and tested with only what
//! it imports, and `plan` and `diagnostics` stay near the bottom.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its non-test code names with `crate::`.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules: BTreeSet<String> = fs_err::read_dir(&src)
        .expect("src/ is readable")
        .map(|entry| entry.expect("src/ is readable").path())
        .filter_map(|path| {
            let stem = path.file_stem()?.to_str()?.to_string();
            (path.is_dir() || path.extension().is_some_and(|ext| ext == "rs")).then_some(stem)
        })
        .filter(|name| name != "lib" && name != "main")
        .collect();
    let name = regex::Regex::new(r"crate::(\w+)|use crate::\{([^;]*)\}").expect("a valid regex");
    let word = regex::Regex::new(r"\b\w+\b").expect("a valid regex");
    let mut graph = Graph::new();
    for module in &modules {
        let imports = graph.entry(module.clone()).or_default();
        let file = src.join(format!("{module}.rs"));
        let dir = src.join(module);
        let files = std::iter::once(file).chain(
            walk(&dir)
                .into_iter()
                .filter(|path| path.file_name().is_some_and(|name| name != "tests.rs")),
        );
        for path in files.filter(|path| path.is_file()) {
            let text = fs_err::read_to_string(&path).expect("a source file is readable");
            // A file's unit tests come last; what they import is not the module's.
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
            for found in name.captures_iter(code) {
                let names = match (found.get(1), found.get(2)) {
                    (Some(single), _) => vec![single.as_str()],
                    (None, Some(group)) => {
                        word.find_iter(group.as_str()).map(|m| m.as_str()).collect()
                    }
                    (None, None) => Vec::new(),
                };
                imports.extend(
                    names
                        .into_iter()
                        .filter(|name| modules.contains(*name) && *name != module)
                        .map(str::to_string),
                );
            }
        }
    }
    graph
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.expect("src/ is readable").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// A cycle of the graph, as the modules around it, when there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for import in &graph[module] {
            if let Some(cycle) = visit(import, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let graph = module_graph();
    assert!(graph.len() > 10, "the modules were found: {graph:?}");
    assert!(
        graph["cli"].contains("execute"),
        "imports are found: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules import each other in a cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn plan_and_diagnostics_import_only_the_model() {
    let graph = module_graph();
    assert_eq!(graph["plan"], BTreeSet::from(["model".to_string()]));
    // `diagnostics` gives the plan's errors (pure data) their hints; every other module's error
    // brings its own.
    assert_eq!(
        graph["diagnostics"],
        BTreeSet::from(["model".to_string(), "plan".to_string()])
    );
}

#[test]
fn a_cycle_is_found() {
    let graph: Graph = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeSet::from([to.to_string()])))
        .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
}
