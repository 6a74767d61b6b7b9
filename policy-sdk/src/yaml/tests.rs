use super::{Fault, Fields, MAX_DEPTH, Node, Text, parse};

fn text(line: usize, value: &str) -> Text {
    Text {
        line,
        value: value.into(),
    }
}

fn fault(yaml: &str) -> Fault {
    parse(yaml).unwrap_err()
}

fn fields(yaml: &str) -> Fields {
    Fields::of(parse(yaml).unwrap().unwrap(), "a thing").unwrap()
}

fn messages(faults: &[Fault]) -> Vec<String> {
    faults.iter().map(|f| f.in_file("f.yml")).collect()
}

#[test]
fn keeps_lines() {
    let root = parse("# rules\na:\n  - x\n  - [y, z]\nb: {c: d}\n").unwrap();
    let expected = Node::Map(
        2,
        vec![
            (
                text(2, "a"),
                Node::List(
                    3,
                    vec![
                        Node::Scalar(text(3, "x")),
                        Node::List(
                            4,
                            vec![Node::Scalar(text(4, "y")), Node::Scalar(text(4, "z"))],
                        ),
                    ],
                ),
            ),
            (
                text(5, "b"),
                Node::Map(5, vec![(text(5, "c"), Node::Scalar(text(5, "d")))]),
            ),
        ],
    );
    assert_eq!(root, Some(expected));
}

#[test]
fn empty_documents_are_none() {
    assert_eq!(parse(""), Ok(None));
    assert_eq!(parse("# nothing\n"), Ok(None));
    assert_eq!(parse("~\n"), Ok(None));
    assert_eq!(parse("---\n...\n"), Ok(None));
}

#[test]
fn refuses_what_inputs_have_no_use_for() {
    assert_eq!(
        fault("a: &x 1\nb: *x\n"),
        Fault::new(1, "YAML anchors are not supported")
    );
    assert_eq!(
        fault("a: 1\nb: *x\n").message,
        "invalid YAML; while parsing node, found unknown anchor"
    );
    assert_eq!(
        fault("a: 1\n---\nb: 2\n"),
        Fault::new(2, "more than one YAML document; the input must hold one")
    );
    assert_eq!(
        fault("? [a]\n: b\n"),
        Fault::new(1, "mapping keys must be plain strings")
    );
    let deep = "[".repeat(MAX_DEPTH + 8) + &"]".repeat(MAX_DEPTH + 8);
    assert_eq!(fault(&deep), Fault::new(1, "nesting is too deep"));
    let deepest = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
    assert!(parse(&deepest).is_ok());
}

#[test]
fn syntax_errors_name_their_line() {
    let f = fault("a: 1\nb: [\n");
    assert_eq!(f.line, 3);
    assert!(f.message.starts_with("invalid YAML; "), "{f}");
}

#[test]
fn accessors() {
    let root = parse("a: x\nb: [1, 2]\nc: {d: e}\n").unwrap().unwrap();
    let (key, a) = root.get("a").unwrap();
    assert_eq!((key.line, a.as_str()), (1, Some("x")));
    assert_eq!(a.as_text(), Some(&text(1, "x")));
    let b = root.get("b").unwrap().1;
    assert_eq!(b.as_list().map(<[_]>::len), Some(2));
    assert_eq!((b.as_str(), b.as_map(), b.kind()), (None, None, "a list"));
    let c = root.get("c").unwrap().1;
    assert_eq!(
        c.get("d").map(|(k, v)| (k.line, v.as_str())),
        Some((3, Some("e")))
    );
    assert_eq!(c.as_map().map(<[_]>::len), Some(1));
    assert!(root.get("z").is_none());
    assert!(a.get("a").is_none());
}

#[test]
fn faults_name_file_and_line() {
    let f = Fault::new(7, "`owner` is empty");
    assert_eq!(f.in_file("rules.yml"), "rules.yml:7: `owner` is empty");
    assert_eq!(f.to_string(), "line 7: `owner` is empty");
}

#[test]
fn unknown_and_repeated_fields_are_faults() {
    let mut faults = Vec::new();
    fields("a: 1\nb: 2\na: 3\nc: 4\n").check(&["a", "b"], "thing", &mut faults);
    assert_eq!(
        messages(&faults),
        [
            "f.yml:3: field `a` is given twice",
            "f.yml:4: unknown field `c` in thing (expected `a`, `b`)",
        ]
    );
    assert_eq!(
        Fields::of(Node::Scalar(text(2, "x")), "a thing").unwrap_err(),
        Fault::new(2, "expected a thing, found a string")
    );
}

#[test]
fn required_strings() {
    let mut faults = Vec::new();
    let mut f = fields("a: x\nb: ''\nc: [1]\n");
    assert_eq!(f.string("a", "thing", &mut faults).unwrap().value, "x");
    assert!(f.string("b", "thing", &mut faults).is_none());
    assert!(f.string("c", "thing", &mut faults).is_none());
    assert!(f.string("d", "thing", &mut faults).is_none());
    assert_eq!(
        messages(&faults),
        [
            "f.yml:2: `b` is empty",
            "f.yml:3: `c` must be a string, found a list",
            "f.yml:1: thing has no `d:`"
        ]
    );
}

#[test]
fn lists_and_booleans() {
    let mut faults = Vec::new();
    let mut f = fields("a: [x, y]\nb:\nc: x\nd: yes\ne: [x, '', [y]]\nf: true\n");
    let a = f.take("a").unwrap().into_strings("a", &mut faults);
    assert_eq!(
        a.iter().map(|t| t.value.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert!(
        f.take("b")
            .unwrap()
            .into_strings("b", &mut faults)
            .is_empty()
    );
    assert!(f.take("c").unwrap().into_list("c", &mut faults).is_empty());
    let e = f.take("e").unwrap().into_strings("e", &mut faults);
    assert_eq!(e, [text(5, "x")]);
    assert_eq!(
        messages(&faults),
        [
            "f.yml:3: `c` must be a list, found a string",
            "f.yml:5: `e` is empty",
            "f.yml:5: `e` must be a string, found a list",
        ]
    );
    assert_eq!(
        f.take("d").unwrap().into_bool("d"),
        Err(Fault::new(4, "`d` must be true or false"))
    );
    assert_eq!(f.take("f").unwrap().into_bool("f"), Ok(true));
    assert!(f.take("f").is_none());
}
