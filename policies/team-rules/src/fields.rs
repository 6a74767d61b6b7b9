//! Reading the fields of a mapping in the rules: each field at most once,
//! unknown fields refused, values checked for their kind.
//!
//! Every problem becomes a [`Fault`]: the line and a message. Readers push
//! faults and carry on, so that one load reports everything wrong at once.

use crate::tree::{Node, Text};

/// A problem in the rules: its line and what is wrong.
pub type Fault = (usize, String);

/// The fields of one mapping, taken out one by one.
#[derive(Debug)]
pub struct Fields {
    line: usize,
    entries: Vec<(Text, Node)>,
}

impl Fields {
    /// The fields of `node`, which must be a mapping; `what` names it for
    /// the fault when it is not ("a key entry").
    pub fn of(node: Node, what: &str) -> Result<Fields, Fault> {
        match node {
            Node::Map(line, entries) => Ok(Fields { line, entries }),
            other => Err((
                other.line(),
                format!("expected {what}, found {}", other.kind()),
            )),
        }
    }

    /// The line the mapping starts on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// Fault every field not in `known` and every field given twice; `what`
    /// names the mapping ("key entry").
    pub fn check(&self, known: &[&str], what: &str, faults: &mut Vec<Fault>) {
        for (index, (name, _)) in self.entries.iter().enumerate() {
            let field = name.value.as_str();
            if !known.contains(&field) {
                let expected = known.join("`, `");
                faults.push((
                    name.line,
                    format!("unknown field `{field}` in {what} (expected `{expected}`)"),
                ));
            } else if self
                .entries
                .iter()
                .take(index)
                .any(|(n, _)| n.value == field)
            {
                faults.push((name.line, format!("field `{field}` is given twice")));
            }
        }
    }

    /// Take the field `name` out, if it is there.
    pub fn take(&mut self, name: &str) -> Option<Node> {
        let index = self.entries.iter().position(|(n, _)| n.value == name)?;
        Some(self.entries.remove(index).1)
    }

    /// Take a required string field; fault when it is missing, not a string
    /// or blank.
    pub fn string(&mut self, name: &str, what: &str, faults: &mut Vec<Fault>) -> Option<Text> {
        let Some(node) = self.take(name) else {
            faults.push((self.line, format!("{what} has no `{name}:`")));
            return None;
        };
        push_err(string(node, name), faults)
    }
}

/// `node` as a non-blank string; `field` names it in the fault.
pub fn string(node: Node, field: &str) -> Result<Text, Fault> {
    match node {
        Node::Scalar(text) if text.value.trim().is_empty() => {
            Err((text.line, format!("`{field}` is empty")))
        }
        Node::Scalar(text) => Ok(text),
        other => Err((
            other.line(),
            format!("`{field}` must be a string, found {}", other.kind()),
        )),
    }
}

/// `node` as a list of non-blank strings. Null is the empty list; a faulty
/// item is reported and left out.
pub fn strings(node: Node, field: &str, faults: &mut Vec<Fault>) -> Vec<Text> {
    match node {
        Node::List(_, items) => items
            .into_iter()
            .filter_map(|item| push_err(string(item, field), faults))
            .collect(),
        null if null.is_null() => Vec::new(),
        other => {
            faults.push((
                other.line(),
                format!("`{field}` must be a list, found {}", other.kind()),
            ));
            Vec::new()
        }
    }
}

/// `node` as `true` or `false`.
pub fn boolean(node: Node, field: &str) -> Result<bool, Fault> {
    match node {
        Node::Scalar(text) if text.value == "true" => Ok(true),
        Node::Scalar(text) if text.value == "false" => Ok(false),
        other => Err((other.line(), format!("`{field}` must be true or false"))),
    }
}

/// The value, or `None` with the fault pushed.
pub fn push_err<T>(result: Result<T, Fault>, faults: &mut Vec<Fault>) -> Option<T> {
    result.map_err(|fault| faults.push(fault)).ok()
}

#[cfg(test)]
mod tests {
    use super::{Fields, boolean, strings};
    use crate::tree::parse;

    fn fields(yaml: &str) -> Fields {
        Fields::of(parse(yaml).unwrap().unwrap(), "a thing").unwrap()
    }

    #[test]
    fn unknown_and_repeated_fields_are_faults() {
        let mut faults = Vec::new();
        fields("a: 1\nb: 2\na: 3\nc: 4\n").check(&["a", "b"], "thing", &mut faults);
        assert_eq!(
            faults,
            vec![
                (3, "field `a` is given twice".to_owned()),
                (
                    4,
                    "unknown field `c` in thing (expected `a`, `b`)".to_owned()
                ),
            ]
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
        let messages: Vec<_> = faults.iter().map(|(l, m)| format!("{l}: {m}")).collect();
        assert_eq!(
            messages,
            [
                "2: `b` is empty",
                "3: `c` must be a string, found a list",
                "1: thing has no `d:`"
            ]
        );
    }

    #[test]
    fn lists_and_booleans() {
        let mut faults = Vec::new();
        let mut f = fields("a: [x, y]\nb:\nc: x\nd: yes\n");
        let a = strings(f.take("a").unwrap(), "a", &mut faults);
        assert_eq!(
            a.iter().map(|t| t.value.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert!(strings(f.take("b").unwrap(), "b", &mut faults).is_empty());
        assert!(strings(f.take("c").unwrap(), "c", &mut faults).is_empty());
        assert_eq!(
            faults,
            vec![(3, "`c` must be a list, found a string".to_owned())]
        );
        assert!(boolean(f.take("d").unwrap(), "d").is_err());
    }
}
