//! Embeds the SQL migrations from `schema/`, `policies/`, `storage/` and `realtime/` (in that
//! order, files sorted by name) into the binary.

use std::fmt::Write as _;
use std::path::Path;

/// Migration folders, in the order they are applied.
const FOLDERS: &[&str] = &["schema", "policies", "storage", "realtime"];

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../..");
    let mut out = String::from("&[\n");
    for folder in FOLDERS {
        let dir = root.join(folder);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 file name");
            let absolute = std::fs::canonicalize(&path).expect("migration path resolves");
            writeln!(
                out,
                "    Migration {{ folder: {folder:?}, name: {name:?}, sql: include_str!({absolute:?}) }},"
            )
            .expect("writing to a String cannot fail");
        }
    }
    out.push_str("]\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
