//! The kernel's layers point one way: every `crate::` path in `src/` names a module of the
//! file's own layer or of a layer below it (the map is in the crate docs, `src/lib.rs`).
//! This test reads the sources, so an upward import fails CI with the file, the line and
//! the path.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Each top-level module of `src/` and its floor; a module may import from its own floor
/// only when it is the same module (siblings on one floor know nothing of each other).
const LAYERS: &[(&str, u32)] = &[
    ("sys", 0),
    ("error", 0),
    ("future", 0),
    ("histogram", 0),
    ("slab", 0),
    ("driver", 1),
    ("task", 2),
    ("time", 3),
    ("mesh", 3),
    ("blocking", 3),
    ("net", 4),
    ("fs", 4),
    ("metrics", 5),
    ("doctor", 5),
    ("server", 6),
    ("compat", 7),
];

fn floor_of(module: &str) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, floor)| *floor)
}

/// The top-level module a source file belongs to (`src/net/stream.rs` → `net`); `None` for
/// the crate root, which assembles the public API from every layer.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    if first == "lib.rs" {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            into.push(path);
        }
    }
}

/// The source with comments and string/char literals blanked (newlines kept, so byte
/// offsets still give line numbers): a `crate::` inside a doc comment or a message is no
/// import.
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, b: u8| out.push(if b == b'\n' { b'\n' } else { b' ' });
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"//") {
            while i < bytes.len() && bytes[i] != b'\n' {
                blank(&mut out, bytes[i]);
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
        } else if rest.starts_with(b"r#\"") || rest.starts_with(b"r\"") {
            let hashes = rest[1..].iter().take_while(|&&b| b == b'#').count();
            let mut end = vec![b'"'];
            end.extend(std::iter::repeat_n(b'#', hashes));
            let open = 2 + hashes;
            out.extend(std::iter::repeat_n(b' ', open));
            i += open;
            while i < bytes.len() && !bytes[i..].starts_with(&end) {
                blank(&mut out, bytes[i]);
                i += 1;
            }
            out.extend(std::iter::repeat_n(b' ', end.len().min(bytes.len() - i)));
            i += end.len();
        } else if bytes[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
                if i < bytes.len() {
                    blank(&mut out, bytes[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if bytes[i] == b'\'' {
            // A char literal ('a', '\n', '"'), or a lifetime ('a) left as it is.
            let len = if rest.get(1) == Some(&b'\\') {
                rest.iter().skip(2).position(|&b| b == b'\'').map(|p| p + 3)
            } else {
                let width = std::str::from_utf8(&rest[1..])
                    .ok()
                    .or_else(|| std::str::from_utf8(&rest[1..rest.len().min(5)]).ok())
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (rest.get(1 + width) == Some(&b'\'')).then_some(width + 2)
            };
            match len {
                Some(len) => {
                    out.extend(std::iter::repeat_n(b' ', len));
                    i += len;
                }
                None => {
                    out.push(b'\'');
                    i += 1;
                }
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Blanks every `#[cfg(test)]` module body: a unit test may start a whole server to drive
/// the code it tests; the layering is about what the kernel itself is built from.
fn without_test_modules(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(pos) = code[from..].find("#[cfg(test)]") {
        let at = from + pos;
        from = at + 1;
        let rest = code[at + "#[cfg(test)]".len()..].trim_start();
        if !rest.starts_with("mod ") {
            continue;
        }
        let Some(open) = code[at..].find('{').map(|p| at + p) else {
            break;
        };
        let mut depth = 0;
        for (i, b) in code.as_bytes()[open..].iter().enumerate() {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        for byte in &mut out[open..=open + i] {
                            if *byte != b'\n' {
                                *byte = b' ';
                            }
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    String::from_utf8(out).expect("only ASCII bytes were blanked")
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The first segment of every path that starts at `crate::`, with its byte offset; a
/// brace group (`crate::{net::X, time}`) gives one segment per item.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(pos) = code[from..].find("crate::") {
        let at = from + pos;
        from = at + "crate::".len();
        if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
            continue; // `$crate::`, `percore::crate::` and the like are not ours
        }
        let mut i = from;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) == Some(&b'{') {
            // Top-level items of the group: after `{` and after each `,` at depth 1.
            let mut depth = 0;
            let mut expect_item = true;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => {
                        depth += 1;
                        if depth == 1 {
                            expect_item = true;
                        }
                    }
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => expect_item = true,
                    b if expect_item && depth == 1 && is_ident(b) => {
                        let end = i + bytes[i..].iter().take_while(|&&b| is_ident(b)).count();
                        found.push((i, code[i..end].to_string()));
                        expect_item = false;
                        i = end;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let end = i + bytes[i..].iter().take_while(|&&b| is_ident(b)).count();
            if end > i {
                found.push((at, code[i..end].to_string()));
            }
        }
    }
    found
}

#[test]
fn no_layer_imports_a_layer_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let Some(floor) = floor_of(&module) else {
            violations.push(format!(
                "{shown}: module `{module}` is in no layer: add it to the map in src/lib.rs and tests/layers.rs"
            ));
            continue;
        };
        let source = fs::read_to_string(file).expect("readable source");
        let code = without_test_modules(&code_only(&source));
        for (offset, target) in crate_paths(&code) {
            checked += 1;
            let line = code[..offset].matches('\n').count() + 1;
            let text = source.lines().nth(line - 1).unwrap_or("").trim();
            let target_module = target.as_str();
            let Some(target_floor) = floor_of(target_module) else {
                violations.push(format!(
                    "{shown}:{line}: `crate::{target}` goes through the crate root; import it from its layer's module  ({text})"
                ));
                continue;
            };
            if target_module == module {
                continue;
            }
            if target_floor > floor {
                violations.push(format!(
                    "{shown}:{line}: `{module}` (floor {floor}) imports `{target_module}` (floor {target_floor}), a layer above it  ({text})"
                ));
            } else if target_floor == floor {
                violations.push(format!(
                    "{shown}:{line}: `{module}` imports `{target_module}`, its sibling on floor {floor}  ({text})"
                ));
            }
        }
    }
    assert!(
        checked > 50,
        "found only {checked} crate paths: is the parser broken?"
    );
    assert!(
        violations.is_empty(),
        "{} import(s) break the layering:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[test]
fn the_parser_sees_grouped_and_inline_paths_but_not_comments_or_strings() {
    let code = code_only(
        "use crate::{net::{A, B}, time, Error};\n\
         // crate::server in a comment\n\
         let s = \"crate::server in a string\"; let c = '\"'; let d = crate::mesh::shard_id();\n\
         fn f<'a>(x: &'a str) -> crate::task::JoinHandle<()> { todo!() }\n",
    );
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["net", "time", "Error", "mesh", "task"]);
}

#[test]
fn unit_test_modules_are_not_the_kernel() {
    let code = without_test_modules(&code_only(
        "use crate::driver::Token;\n#[cfg(test)]\nmod tests {\n    use crate::server::Server;\n}\nfn f() -> crate::mesh::MeshError { todo!() }\n",
    ));
    let names: Vec<String> = crate_paths(&code).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["driver", "mesh"]);
    assert_eq!(code.lines().count(), 6, "lines kept for the line numbers");
}

#[test]
fn an_upward_import_is_reported() {
    // `task` (floor 2) naming `net` (floor 4) is what the main test must catch.
    let code = code_only("use crate::{driver::Driver, net::NetShard};\n");
    let floors: Vec<Option<u32>> = crate_paths(&code)
        .into_iter()
        .map(|(_, module)| floor_of(&module))
        .collect();
    assert_eq!(floors, [Some(1), Some(4)]);
    assert!(floor_of("net").unwrap() > floor_of("task").unwrap());
}

#[test]
fn every_layer_but_sys_and_driver_forbids_unsafe_code() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for (module, _) in LAYERS {
        if matches!(*module, "sys" | "driver") {
            continue;
        }
        let root = [
            src.join(format!("{module}.rs")),
            src.join(module).join("mod.rs"),
        ]
        .into_iter()
        .find(|path| path.exists());
        // A layer not in this tree yet (`compat` arrives behind a feature).
        let Some(root) = root else { continue };
        let source = fs::read_to_string(&root).expect("readable source");
        if !source.contains("#![forbid(unsafe_code)]") {
            missing.push(root.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "unsafe code lives in src/sys and src/driver only; add #![forbid(unsafe_code)] to: {}",
        missing.join(", ")
    );
}
