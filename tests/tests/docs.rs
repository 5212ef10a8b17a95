//! The docs say what the code does: the io_uring feature table in docs/DESIGN.md lists
//! exactly the opcodes the kernel's opcode table supports.

use tests::root;

#[test]
fn design_doc_opcode_table_matches_opdef() {
    let opdef = std::fs::read_to_string(root().join("guest-kernel/src/io_uring/opdef.rs")).unwrap();
    // Supported entries are written `OpDef { name: "NOP", ...` or `family_op("READ")`;
    // the others `unsupported("...")`.
    let table = opdef.split("pub static OPS").nth(1).expect("the OPS table");
    let table = table.split("];").next().expect("its end");
    let mut supported: Vec<String> = Vec::new();
    for line in table.lines().map(str::trim) {
        let name = if let Some(rest) = line.strip_prefix("OpDef { name: \"") {
            rest.split('"').next()
        } else if line.starts_with("unsupported(") {
            None
        } else if let Some((_, rest)) = line.split_once("_op(\"") {
            rest.split('"').next()
        } else {
            None
        };
        supported.extend(name.map(str::to_owned));
    }
    let design = std::fs::read_to_string(root().join("docs/DESIGN.md")).unwrap();
    let documented: Vec<String> = design
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter(|l| l.ends_with("| yes |"))
        .filter_map(|l| l.split(' ').next().map(str::to_owned))
        .collect();
    assert!(supported.len() >= 8, "parsed {supported:?}");
    let (mut a, mut b) = (supported.clone(), documented.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b, "docs/DESIGN.md's opcode table and opdef.rs disagree");
}
