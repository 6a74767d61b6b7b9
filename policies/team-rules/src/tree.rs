//! A YAML document as a small tree that remembers the line of every node,
//! so that each fault in the rules can point at the line to fix.
//!
//! Only what the rules format uses is kept: strings, lists and mappings
//! with string keys. Anchors, aliases, complex mapping keys and second
//! documents are refused; tags are ignored.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Deeper nesting is refused; the rules format needs four levels.
const MAX_DEPTH: usize = 16;

/// A string with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub line: usize,
    pub value: String,
}

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Scalar(Text),
    List(usize, Vec<Node>),
    Map(usize, Vec<(Text, Node)>),
}

impl Node {
    /// The line the node starts on.
    pub fn line(&self) -> usize {
        match self {
            Node::Scalar(text) => text.line,
            Node::List(line, _) | Node::Map(line, _) => *line,
        }
    }

    /// What the node is, for messages: "a string", "a list", "a mapping".
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(..) => "a string",
            Node::List(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }

    /// Whether the node is YAML's null: nothing after `field:`, `~` or
    /// `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(t) if matches!(t.value.as_str(), "" | "~" | "null"))
    }
}

/// A collection under construction.
enum Open {
    List(usize, Vec<Node>),
    /// A mapping, with the key waiting for its value.
    Map(usize, Vec<(Text, Node)>, Option<Text>),
}

/// Turns parser events into a tree. The first fault stops the building;
/// later events are ignored.
#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    root: Option<Node>,
    documents: usize,
    fault: Option<(usize, String)>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: &str) {
        self.fault.get_or_insert_with(|| (line, message.to_owned()));
    }

    /// Place a finished node in the collection that holds it.
    fn place(&mut self, node: Node) {
        let rejected = match self.open.last_mut() {
            None => {
                self.root = Some(node);
                None
            }
            Some(Open::List(_, items)) => {
                items.push(node);
                None
            }
            Some(Open::Map(_, entries, pending)) => match (pending.take(), node) {
                (Some(key), value) => {
                    entries.push((key, value));
                    None
                }
                (None, Node::Scalar(key)) => {
                    *pending = Some(key);
                    None
                }
                (None, other) => Some(other.line()),
            },
        };
        if let Some(line) = rejected {
            self.fail(line, "mapping keys must be plain strings");
        }
    }

    fn start(&mut self, open: Open, line: usize) {
        if self.open.len() >= MAX_DEPTH {
            self.fail(line, "nesting is too deep");
        } else {
            self.open.push(open);
        }
    }

    fn end(&mut self) {
        let node = match self.open.pop() {
            Some(Open::List(line, items)) => Node::List(line, items),
            Some(Open::Map(line, entries, _)) => Node::Map(line, entries),
            None => return,
        };
        self.place(node);
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.fault.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(line, "more than one YAML document; keep the rules in one");
                }
            }
            Event::Alias(_) => self.fail(line, "YAML aliases are not supported"),
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(anchor, _)
            | Event::MappingStart(anchor, _)
                if anchor != 0 =>
            {
                self.fail(line, "YAML anchors are not supported");
            }
            Event::Scalar(value, ..) => self.place(Node::Scalar(Text { line, value })),
            Event::SequenceStart(..) => self.start(Open::List(line, Vec::new()), line),
            Event::MappingStart(..) => self.start(Open::Map(line, Vec::new(), None), line),
            Event::SequenceEnd | Event::MappingEnd => self.end(),
            _ => {}
        }
    }
}

/// Parse a document. An empty document is `Ok(None)`; a fault is its line
/// and message.
pub fn parse(text: &str) -> Result<Option<Node>, (usize, String)> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, true)
        .map_err(|e| (e.marker().line(), format!("invalid YAML; {}", e.info())))?;
    match builder.fault {
        Some(fault) => Err(fault),
        None => Ok(builder.root.filter(|root| !root.is_null())),
    }
}

#[cfg(test)]
mod tests {
    use super::{Node, Text, parse};

    fn text(line: usize, value: &str) -> Text {
        Text {
            line,
            value: value.into(),
        }
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
    }

    #[test]
    fn refuses_what_the_format_has_no_use_for() {
        let fault = |yaml: &str| parse(yaml).unwrap_err();
        assert_eq!(
            fault("a: &x 1\nb: *x\n").1,
            "YAML anchors are not supported"
        );
        assert_eq!(fault("a: 1\n---\nb: 2\n").0, 2);
        assert_eq!(
            fault("? [a]\n: b\n").1,
            "mapping keys must be plain strings"
        );
        assert!(fault("a: [\n").1.starts_with("invalid YAML; "));
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert_eq!(fault(&deep).1, "nesting is too deep");
    }
}
