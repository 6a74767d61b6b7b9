//! Checking a tree against a format: the fields of a mapping, and values
//! of the kind a field needs. Messages name the field in backquotes
//! ("`teams` must be a list, found a string"); callers add the file and
//! line with [`Fault::in_file`].

use super::{Fault, Node, Text};

/// The fields of one mapping, taken out one by one.
#[derive(Debug)]
pub struct Fields {
    line: usize,
    entries: Vec<(Text, Node)>,
}

impl Fields {
    /// The fields of `node`, which must be a mapping; `what` names what was
    /// expected for the fault when it is not ("a key entry").
    pub fn of(node: Node, what: &str) -> Result<Fields, Fault> {
        match node {
            Node::Map(line, entries) => Ok(Fields { line, entries }),
            other => Err(Fault::new(
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
                faults.push(Fault::new(
                    name.line,
                    format!("unknown field `{field}` in {what} (expected `{expected}`)"),
                ));
            } else if self
                .entries
                .iter()
                .take(index)
                .any(|(n, _)| n.value == field)
            {
                faults.push(Fault::new(
                    name.line,
                    format!("field `{field}` is given twice"),
                ));
            }
        }
    }

    /// Take the field `name` out, if it is there. Of a repeated field, the
    /// first is taken.
    pub fn take(&mut self, name: &str) -> Option<Node> {
        let index = self.entries.iter().position(|(n, _)| n.value == name)?;
        Some(self.entries.remove(index).1)
    }

    /// Take a required string field; fault when it is missing, not a string
    /// or blank. `what` names the mapping ("key entry").
    pub fn string(&mut self, name: &str, what: &str, faults: &mut Vec<Fault>) -> Option<Text> {
        let Some(node) = self.take(name) else {
            faults.push(Fault::new(self.line, format!("{what} has no `{name}:`")));
            return None;
        };
        push_err(node.into_string(name), faults)
    }
}

/// Readers for field values; `field` names the field in the fault.
impl Node {
    /// The node as a non-blank string.
    pub fn into_string(self, field: &str) -> Result<Text, Fault> {
        match self {
            Node::Scalar(text) if text.value.trim().is_empty() => {
                Err(Fault::new(text.line, format!("`{field}` is empty")))
            }
            Node::Scalar(text) => Ok(text),
            other => Err(Fault::new(
                other.line(),
                format!("`{field}` must be a string, found {}", other.kind()),
            )),
        }
    }

    /// The node as a list of nodes. Null is the empty list.
    pub fn into_list(self, field: &str, faults: &mut Vec<Fault>) -> Vec<Node> {
        match self {
            Node::List(_, items) => items,
            null if null.is_null() => Vec::new(),
            other => {
                faults.push(Fault::new(
                    other.line(),
                    format!("`{field}` must be a list, found {}", other.kind()),
                ));
                Vec::new()
            }
        }
    }

    /// The node as a list of non-blank strings. Null is the empty list; a
    /// faulty item is reported and left out.
    pub fn into_strings(self, field: &str, faults: &mut Vec<Fault>) -> Vec<Text> {
        self.into_list(field, faults)
            .into_iter()
            .filter_map(|item| push_err(item.into_string(field), faults))
            .collect()
    }

    /// The node as `true` or `false`, exactly.
    pub fn into_bool(self, field: &str) -> Result<bool, Fault> {
        match self {
            Node::Scalar(text) if text.value == "true" => Ok(true),
            Node::Scalar(text) if text.value == "false" => Ok(false),
            other => Err(Fault::new(
                other.line(),
                format!("`{field}` must be true or false"),
            )),
        }
    }
}

/// The value, or `None` with the fault pushed onto `faults`.
pub fn push_err<T>(result: Result<T, Fault>, faults: &mut Vec<Fault>) -> Option<T> {
    result.map_err(|fault| faults.push(fault)).ok()
}
