//! Embeds the dashboard (`dashboard/`, plain HTML, CSS and ES modules with
//! no build step) in the binary: writes `$OUT_DIR/dashboard_assets.rs`, a
//! table of every file under it with its bytes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if entry.file_type()?.is_dir() {
            walk(&path, root, out)?;
        } else if let Ok(relative) = path.strip_prefix(root) {
            let name = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            out.push((name, path));
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest.join("dashboard");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        walk(&root, &root, &mut files)?;
    }
    let mut code = String::from("/// Every dashboard file: its path under `dashboard/` and its bytes.\n");
    code.push_str("pub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &files {
        let _ = writeln!(code, "    ({name:?}, include_bytes!({:?})),", path.display().to_string());
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("dashboard_assets.rs");
    std::fs::write(out, code)
}
