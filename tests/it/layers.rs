//! The floors: no module imports from a floor above its own, and no two top-level modules of
//! any crate import each other, directly or around a circle.
//!
//! docs/design.md ("Floors") lists each crate's floors, bottom first, in a table after a
//! `<!-- floors:CRATE -->` marker; this test reads that table, so the document and the check
//! cannot drift apart. A top-level module is a file or folder directly under `src/`; it
//! "imports" every other top-level module it names as `crate::NAME` (or `$crate::NAME` in a
//! macro, or `super::NAME` from the top level), and every module whose items it names through
//! the crate root's re-exports (`crate::Failure` is `failure`). Unit tests
//! (`#[cfg(test)] mod tests`) and comments do not count. A module missing from its crate's
//! table fails the check, so a new module gets its floor when it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A crate's top-level modules and the files of each.
fn top_modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            mods.entry(name).or_default().extend(files);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let key = match stem {
                "lib" | "main" => "<root>".to_string(),
                _ => stem.to_string(),
            };
            mods.entry(key).or_default().push(path);
        }
    }
    mods
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

/// The source without comments, string literals' contents, or `#[cfg(test)]` items.
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        // Comments (doc comments included) end the line; a `//` inside a string is rare enough
        // in `use` territory not to matter.
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    strip_cfg_test(&out)
}

/// Removes every item under `#[cfg(test)]` or `#[cfg(all(test, ...))]` (a `mod tests { ... }`
/// block or a single item).
fn strip_cfg_test(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(i) = ["#[cfg(test)]", "#[cfg(all(test,"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
    {
        out.push_str(&rest[..i]);
        // Skip the attribute itself, then the item it applies to.
        let attr_end = rest[i..].find(")]").map_or(rest.len(), |j| i + j + 2);
        let after = &rest[attr_end..];
        // The item ends at its matching closing brace, or at a `;` before any brace.
        let mut depth = 0usize;
        let mut end = after.len();
        for (j, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = j + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segments named after `crate::` (and `$crate::`, and `super::` when `top`),
/// including each branch of a grouped `use crate::{a, b::c}`.
fn crate_refs(code: &str, top: bool) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut prefixes = vec!["crate::"];
    if top {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut from = 0;
        while let Some(i) = code[from..].find(prefix) {
            let start = from + i;
            from = start + prefix.len();
            // `foo_crate::x` is not `crate::x`.
            if code[..start].chars().next_back().is_some_and(is_ident) {
                continue;
            }
            let rest = &code[from..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1usize;
                let mut at_segment_start = true;
                let mut word = String::new();
                for c in group.chars() {
                    if depth == 1 && at_segment_start && is_ident(c) {
                        word.push(c);
                        continue;
                    }
                    if !word.is_empty() {
                        names.insert(std::mem::take(&mut word));
                    }
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => {
                            at_segment_start = true;
                            continue;
                        }
                        c if c.is_whitespace() => continue,
                        _ => {}
                    }
                    at_segment_start = false;
                }
            } else {
                let word: String = rest.chars().take_while(|&c| is_ident(c)).collect();
                if !word.is_empty() {
                    names.insert(word);
                }
            }
        }
    }
    names
}

/// Names the crate root re-exports (`pub use failure::{BoxError, Failure};`), mapped to the
/// top-level module they come from.
fn root_reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let code = code_of(lib);
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let path = path.trim_start_matches("crate::");
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        for item in items
            .split(|c: char| !is_ident(c))
            .filter(|w| !w.is_empty())
        {
            map.insert(item.to_string(), module.to_string());
        }
    }
    map
}

/// Each top-level module and the top-level modules it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mods = top_modules(src);
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let lib = ["lib.rs", "main.rs"]
        .iter()
        .find_map(|f| fs::read_to_string(src.join(f)).ok())
        .unwrap_or_default();
    let reexports = root_reexports(&lib, &names);
    let mut graph = BTreeMap::new();
    for (module, files) in &mods {
        let mut uses = BTreeSet::new();
        for file in files {
            // `super::` from a file directly under src/, or from a folder's mod.rs, is the root.
            let rel = file.strip_prefix(src).unwrap();
            let top = rel.components().count() == 1
                || rel.ends_with("mod.rs") && rel.components().count() == 2;
            let code = code_of(&fs::read_to_string(file).unwrap());
            for name in crate_refs(&code, top) {
                let target = if names.contains(&name) {
                    Some(name)
                } else {
                    reexports.get(&name).cloned()
                };
                if let Some(target) = target {
                    if &target != module && target != "<root>" {
                        uses.insert(target);
                    }
                }
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                loop {
                    let w = self.stack.pop().unwrap();
                    self.on_stack.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.found.push(comp);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

/// The floors docs/design.md gives a crate: module -> (floor number, floor name).
fn floors_of(design: &str, krate: &str) -> Option<BTreeMap<String, (u32, String)>> {
    let marker = format!("<!-- floors:{krate} -->");
    let start = design.find(&marker)? + marker.len();
    let mut floors = BTreeMap::new();
    for line in design[start..]
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
    {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(floor) = cells.first() else { continue };
        let mut words = floor.splitn(2, ' ');
        let Ok(number) = words.next().unwrap_or("").parse::<u32>() else {
            continue; // the header and its rule
        };
        let name = words.next().unwrap_or("").to_string();
        for module in cells.get(1).unwrap_or(&"").split(',') {
            let module = module.trim().trim_matches('`');
            if !module.is_empty() {
                floors.insert(module.to_string(), (number, name.clone()));
            }
        }
    }
    Some(floors)
}

fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(Path::new(ROOT).join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                p.join("src"),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn no_import_circle_between_top_level_modules_of_any_crate() {
    let mut problems = Vec::new();
    for (krate, src) in crates() {
        for circle in circles(&import_graph(&src)) {
            problems.push(format!("{krate}: {} import each other", circle.join(", ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import circles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_module_imports_from_a_floor_above_its_own() {
    let design = fs::read_to_string(Path::new(ROOT).join("docs/design.md")).unwrap();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (krate, src) in crates() {
        let Some(floors) = floors_of(&design, &krate) else {
            continue;
        };
        checked += 1;
        for (module, uses) in import_graph(&src) {
            if module == "<root>" {
                continue; // the crate root is the facade: it may re-export any floor
            }
            let Some((mine, my_name)) = floors.get(&module) else {
                problems.push(format!(
                    "{krate}: module `{module}` has no floor in docs/design.md"
                ));
                continue;
            };
            for used in uses {
                match floors.get(&used) {
                    Some((theirs, their_name)) if theirs > mine => problems.push(format!(
                        "{krate}: `{module}` (floor {mine} {my_name}) imports `{used}` (floor {theirs} {their_name})"
                    )),
                    Some(_) => {}
                    None => problems.push(format!(
                        "{krate}: module `{used}` has no floor in docs/design.md"
                    )),
                }
            }
        }
    }
    assert!(checked >= 1, "docs/design.md lists no floors");
    assert!(
        problems.is_empty(),
        "floors broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_grouped_imports_re_exports_and_ignores_tests_and_comments() {
    let code = code_of(
        "use crate::{a::X, b, c::{d, e}};\n\
         // crate::commented\n\
         fn f() { crate::g::h(); $crate::m::n; my_crate::no; }\n\
         #[cfg(test)]\nmod tests { use crate::only_in_tests; }\n\
         #[cfg(all(test, unix))]\nmod more { use crate::linux_tests_only; }\n",
    );
    let refs = crate_refs(&code, false);
    let want: BTreeSet<String> = ["a", "b", "c", "g", "m"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(refs, want);
    let modules: BTreeSet<String> = ["failure".to_string()].into();
    let re = root_reexports("pub use failure::{BoxError, Failure};\n", &modules);
    assert_eq!(re.get("Failure").map(String::as_str), Some("failure"));
    let mut graph = BTreeMap::new();
    graph.insert("x".to_string(), BTreeSet::from(["y".to_string()]));
    graph.insert("y".to_string(), BTreeSet::from(["x".to_string()]));
    graph.insert("z".to_string(), BTreeSet::from(["x".to_string()]));
    assert_eq!(
        circles(&graph),
        vec![vec!["x".to_string(), "y".to_string()]]
    );
    let floors = floors_of(
        "<!-- floors:k -->\n| floor | modules |\n|---|---|\n| 0 ground | `a`, `b` |\n| 1 up | c |\n\nafter",
        "k",
    )
    .unwrap();
    assert_eq!(floors.get("c"), Some(&(1, "up".to_string())));
    assert_eq!(floors.len(), 3);
}
