//! The docs say what the code does: the io_uring feature table in docs/DESIGN.md lists
//! exactly the opcodes the kernel's opcode table supports.

use tests::root;

#[test]
fn design_doc_opcode_table_matches_opdef() {
    let opdef = std::fs::read_to_string(root().join("guest-kernel/src/io_uring/opdef.rs")).unwrap();
    // Supported entries are written `OpDef { name: "NOP", ...` or `rw_op("READ")`;
    // the others `unsupported("...")`.
    let mut supported: Vec<String> = Vec::new();
    for line in opdef.lines().map(str::trim) {
        let name = if let Some(rest) = line.strip_prefix("OpDef { name: \"") {
            rest.split('"').next()
        } else if let Some(rest) = line.strip_prefix("rw_op(\"") {
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
