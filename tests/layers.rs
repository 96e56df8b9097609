//! The layers of README "Layout", checked on the source: the model depends on nothing of
//! probe's, the verdict logic on the model only, the outside systems of net/ on the model
//! only, and no two top-level modules depend on each other in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules its code (not its tests, not its comments) uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top(&src, f)).collect();
    for file in &files {
        let Some(from) = top(&src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let uses = graph.entry(from.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&name) && name != from {
                    uses.insert(name);
                }
            }
        }
    }
    graph
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/check/tcp.rs` -> `check`; `lib.rs` and `main.rs` are the crate's root, not a layer.
fn top(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

#[test]
fn the_model_depends_on_nothing_of_probes() {
    let g = graph();
    assert_eq!(g["model"], BTreeSet::new(), "model uses {:?}", g["model"]);
}

#[test]
fn the_verdict_logic_and_the_adapters_depend_on_the_model_only() {
    let g = graph();
    let model: BTreeSet<String> = ["model".to_string()].into();
    for layer in ["verdict", "net", "target"] {
        assert!(g[layer].is_subset(&model), "{layer} uses {:?}", g[layer]);
    }
}

#[test]
fn no_two_modules_depend_on_each_other_in_a_circle() {
    let g = graph();
    // Everything a module reaches; a module that reaches itself sits on a circle.
    for start in g.keys() {
        let mut seen = BTreeSet::new();
        let mut next: Vec<&String> = g[start].iter().collect();
        while let Some(m) = next.pop() {
            assert_ne!(m, start, "{start} reaches itself: a module circle");
            if seen.insert(m.clone()) {
                next.extend(g.get(m).into_iter().flatten());
            }
        }
    }
}
