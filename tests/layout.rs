//! The module map of `src/` stays a layering: every import between two top-level modules points
//! down the order below, and within one module no two files import each other, directly or
//! round a loop. Run with `--nocapture` to print the map. A module added to `src/` must be
//! placed in [`LAYERS`] and in the README's layout section, or this test says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up. A module may import only modules of lower layers.
const LAYERS: &[&[&str]] = &[
    // Leaves: no imports of the crate's own modules.
    &[
        "model", "memory", "fds", "signals", "logfile", "sdnotify", "utc", "testrng",
    ],
    &["config", "par", "telemetry"],
    &["codec", "device", "compat", "dnsmasq"],
    &["view", "serve"],
    &["dhcp", "dns", "metadata", "migrate"],
    &["agent"],
    &["rpc"],
    &["neutron", "standalone"],
    &["status"],
    // The process: one mode's control loop, the status endpoint, signals, sdnotify.
    &["daemon"],
    &["main"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every `.rs` file of `src/` (but `src/bin/`, the tools) with its module path: `src/view/v6/
/// update.rs` is `["view", "v6", "update"]`, `src/main.rs` is `["main"]`.
fn modules(src: &Path) -> Vec<(Vec<String>, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = e.expect("dir entry").path();
            if path.is_dir() {
                if path != src.join("bin") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] {
                continue;
            }
            out.push((parts, path));
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (doc links are not imports) and string literals.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
                prev = if prev == '\\' && c == '\\' { ' ' } else { c };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_str = true;
                prev = ' ';
                continue;
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths a file names: `crate::a::b` (also `neutron_dhcp::a::b` in `main.rs`) and
/// `super::x`, resolved against the file's own module path; a group (`use crate::{a, b::{c,
/// d}}`) names each of its items.
fn referenced(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (root, base) in [
        ("crate::", Vec::new()),
        ("neutron_dhcp::", Vec::new()),
        ("super::", me[..me.len().saturating_sub(1)].to_vec()),
    ] {
        let mut at = 0;
        while let Some(i) = code[at..].find(root) {
            let start = at + i;
            at = start + root.len();
            // Not the tail of a longer path (`x::super::`, `foo_crate::`).
            let before = &code[..start];
            if before.ends_with("::") || before.chars().last().is_some_and(ident_char) {
                continue;
            }
            let mut path = base.clone();
            let mut rest = &code[at..];
            // `super::super::x`
            while let Some(r) = rest.strip_prefix("super::") {
                path.pop();
                rest = r;
            }
            paths_of(rest, path, &mut found);
        }
    }
    found
}

/// The paths the text at the start of `text` names below `path`: `a::b::C` is one, a group
/// `{a, b::{c, d}}` one per item.
fn paths_of(text: &str, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut rest = text;
    loop {
        let name: String = rest.chars().take_while(|&c| ident_char(c)).collect();
        if name.is_empty() {
            if let Some(group) = rest.strip_prefix('{') {
                for item in group_items(group) {
                    paths_of(item.trim_start(), path.clone(), out);
                }
                return;
            }
            break;
        }
        rest = &rest[name.len()..];
        path.push(name);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out.push(path);
}

/// The top-level, comma-separated items of a group whose `{` is just before `text`.
fn group_items(text: &str) -> Vec<&str> {
    let (mut items, mut depth, mut from) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&text[from..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// The longest prefix of `path` that is a module of the crate.
fn module_of(path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
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
                let from = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(n.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
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
fn imports_point_down_and_never_round_a_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    let known: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    // Top-level edges, and per parent module the edges between its children.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut siblings: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (me, path) in &files {
        let text = std::fs::read_to_string(path).expect("readable source");
        top.entry(me[0].clone()).or_default();
        for target in referenced(&code_only(&text), me) {
            let Some(to) = module_of(&target, &known) else {
                continue;
            };
            if to[0] != me[0] {
                top.entry(me[0].clone()).or_default().insert(to[0].clone());
                continue;
            }
            // Same top-level module: compare the two files below their closest common parent;
            // a file naming its own ancestor (its parent's types) is part of the same job.
            let common = me.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == me.len() || common == to.len() {
                continue;
            }
            let parent = me[..common].join("::");
            siblings
                .entry(parent)
                .or_default()
                .entry(me[common].clone())
                .or_default()
                .insert(to[common].clone());
        }
    }

    println!("import map of src/ (top-level modules, each with what it imports):");
    for (from, to) in &top {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!("  {from:<11} -> {}", to.join(" "));
    }
    for (from, tos) in &top {
        let Some(rf) = rank(from) else {
            problems.push(format!("src/{from} is not placed in LAYERS"));
            continue;
        };
        for to in tos {
            match rank(to) {
                Some(rt) if rt < rf => {}
                Some(_) => {
                    problems.push(format!("{from} imports {to}: an upward or sideways arrow"))
                }
                None => problems.push(format!("src/{to} is not placed in LAYERS")),
            }
        }
    }
    for (parent, edges) in &siblings {
        if let Some(cycle) = find_cycle(edges) {
            problems.push(format!(
                "files of {parent} import each other: {}",
                cycle.join(" -> ")
            ));
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        problems.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_layout_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let layout = readme
        .split("\n## Layout")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Layout section");
    let mut missing = Vec::new();
    for (m, _) in modules(&root.join("src")) {
        if m.len() != 1 {
            continue;
        }
        let name = &m[0];
        if ![format!("`{name}`"), format!("`{name}/`")]
            .iter()
            .any(|cell| layout.contains(cell.as_str()))
        {
            missing.push(name.clone());
        }
    }
    assert!(missing.is_empty(), "README layout misses {missing:?}");
}

#[test]
fn grouped_and_relative_imports_are_followed() {
    let me: Vec<String> = ["dns", "server"].iter().map(|s| s.to_string()).collect();
    let code = "use crate::{view::cache::ViewHandle, serve::{threads, dgram::send_now}};\n\
                use super::{answer::{self, Outcome}, Forwarder};\n\
                let x = super::super::model::Port::default();";
    let mut got: Vec<String> = referenced(code, &me).iter().map(|p| p.join("::")).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "dns::Forwarder",
            "dns::answer::Outcome",
            "dns::answer::self",
            "model::Port::default",
            "serve::dgram::send_now",
            "serve::threads",
            "view::cache::ViewHandle",
        ]
    );
}
