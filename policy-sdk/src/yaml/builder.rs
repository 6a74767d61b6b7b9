//! Turning yaml-rust2's marked parser events into a [`Node`] tree.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::{Fault, MAX_DEPTH, Node, Text};

/// A collection under construction.
enum Open {
    List(usize, Vec<Node>),
    /// A mapping, with the key waiting for its value.
    Map(usize, Vec<(Text, Node)>, Option<Text>),
}

/// Builds the tree from events without recursing; [`MAX_DEPTH`] bounds the
/// depth of the tree it builds. The first fault stops the building; later
/// events are ignored.
#[derive(Default)]
struct Builder {
    open: Vec<Open>,
    root: Option<Node>,
    documents: usize,
    fault: Option<Fault>,
}

/// Parse `text`; see [`super::parse`].
pub(super) fn build(text: &str) -> Result<Option<Node>, Fault> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, true)
        .map_err(|e| Fault::new(e.marker().line(), format!("invalid YAML; {}", e.info())))?;
    match builder.fault {
        Some(fault) => Err(fault),
        None => Ok(builder.root.filter(|root| !root.is_null())),
    }
}

impl Builder {
    fn fail(&mut self, line: usize, message: &str) {
        self.fault.get_or_insert_with(|| Fault::new(line, message));
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
                    self.fail(line, "more than one YAML document; the input must hold one");
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
