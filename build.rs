//! Embeds the saved queries of `queries/*.sql` in the binary, so an
//! installed `flowsql` has them without the source tree.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=queries");
    let dir =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("queries");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("queries/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// (name, text) of every file in queries/.\nstatic SAVED_QUERY_FILES: &[(&str, &str)] = &[\n",
    );
    for file in files {
        println!("cargo:rerun-if-changed={}", file.display());
        let name = file
            .file_stem()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            file.display().to_string()
        )
        .expect("write to string");
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("set by cargo")).join("saved_queries.rs");
    std::fs::write(out, code).expect("write saved_queries.rs");
}
