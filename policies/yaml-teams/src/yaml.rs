//! Reading the team-key YAML file with line numbers.
//!
//! The file is a list of teams, each with its keys:
//!
//! ```yaml
//! - team: main
//!   ssh_keys:
//!   - ssh-ed25519 AAAA... alice@laptop
//! ```
//!
//! The YAML is loaded into a small tree that remembers the line of every
//! node, so each complaint can point at the line to fix. Anchors and aliases
//! are refused: the format has no use for them, and refusing them rules out
//! alias-expansion attacks.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Deeper nesting than this is refused; the format needs three levels.
const MAX_DEPTH: usize = 32;

/// One team entry as written in the file.
#[derive(Debug, PartialEq, Eq)]
pub struct TeamEntry {
    pub team: String,
    pub line: usize,
    /// Each key string with its line.
    pub keys: Vec<(usize, String)>,
}

#[derive(Debug)]
enum Node {
    Scalar(usize, String),
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(Node, Node)>),
}

impl Node {
    fn line(&self) -> usize {
        match self {
            Node::Scalar(line, _) | Node::Seq(line, _) | Node::Map(line, _) => *line,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(..) => "a string",
            Node::Seq(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }
}

/// Builds the tree from parser events. Problems are recorded, not panicked
/// on: the first one wins and later events are ignored.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<Node>,
    /// Keys waiting for their value, one slot per open mapping.
    pending_keys: Vec<Option<Node>>,
    root: Option<Node>,
    documents: usize,
    error: Option<(usize, String)>,
}

impl TreeBuilder {
    fn fail(&mut self, line: usize, message: &str) {
        if self.error.is_none() {
            self.error = Some((line, message.to_owned()));
        }
    }

    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(Node::Seq(_, items)) => items.push(node),
            Some(Node::Map(_, entries)) => match self.pending_keys.last_mut() {
                Some(slot @ Some(_)) => {
                    if let Some(key) = slot.take() {
                        entries.push((key, node));
                    }
                }
                Some(slot) => *slot = Some(node),
                None => {}
            },
            Some(Node::Scalar(..)) => {}
            None => self.root = Some(node),
        }
    }

    fn open(&mut self, node: Node) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(node.line(), "nesting is too deep");
            return;
        }
        if matches!(node, Node::Map(..)) {
            self.pending_keys.push(None);
        }
        self.stack.push(node);
    }

    fn close(&mut self) {
        if let Some(node) = self.stack.pop() {
            if matches!(node, Node::Map(..)) {
                self.pending_keys.pop();
            }
            self.push_value(node);
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(
                        line,
                        "more than one YAML document; put all teams in one list",
                    );
                }
            }
            Event::Alias(_) => self.fail(line, "YAML aliases are not supported"),
            Event::Scalar(value, _, anchor, _) if anchor_free(anchor) => {
                self.push_value(Node::Scalar(line, value));
            }
            Event::SequenceStart(anchor, _) if anchor_free(anchor) => {
                self.open(Node::Seq(line, Vec::new()));
            }
            Event::MappingStart(anchor, _) if anchor_free(anchor) => {
                self.open(Node::Map(line, Vec::new()));
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Scalar(..) | Event::SequenceStart(..) | Event::MappingStart(..) => {
                self.fail(line, "YAML anchors are not supported");
            }
            _ => {}
        }
    }
}

fn anchor_free(anchor: usize) -> bool {
    anchor == 0
}

/// The well-formed team entries, and the faults (with their lines) of the
/// rest. Entries are returned even when others are faulty, so that their
/// keys are checked too and every fault is reported in one go.
pub type Parsed = (Vec<TeamEntry>, Vec<(usize, String)>);

/// Parse the file.
pub fn parse(text: &str) -> Parsed {
    let mut builder = TreeBuilder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return (
            Vec::new(),
            vec![(e.marker().line(), format!("invalid YAML; {}", e.info()))],
        );
    }
    if let Some(error) = builder.error {
        return (Vec::new(), vec![error]);
    }
    match builder.root {
        None => (Vec::new(), Vec::new()),
        Some(Node::Seq(_, items)) => entries(items),
        Some(Node::Scalar(_, s)) if s.is_empty() => (Vec::new(), Vec::new()),
        Some(other) => {
            let found = other.kind();
            (
                Vec::new(),
                vec![(
                    other.line(),
                    format!("expected a list of teams (`- team: NAME`), found {found}"),
                )],
            )
        }
    }
}

fn entries(items: Vec<Node>) -> Parsed {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        match entry(item) {
            Ok(entry) => out.push(entry),
            Err(mut e) => errors.append(&mut e),
        }
    }
    (out, errors)
}

fn entry(node: Node) -> Result<TeamEntry, Vec<(usize, String)>> {
    let Node::Map(line, fields) = node else {
        let msg = format!(
            "expected a team entry (`team:` and `ssh_keys:`), found {}",
            node.kind()
        );
        return Err(vec![(node.line(), msg)]);
    };
    let mut team = None;
    let mut keys = None;
    let mut errors = Vec::new();
    for (key, value) in fields {
        match (key, value) {
            (Node::Scalar(_, k), Node::Scalar(l, v)) if k == "team" => team = Some((l, v)),
            (Node::Scalar(_, k), v) if k == "team" => {
                errors.push((
                    v.line(),
                    format!("`team` must be a string, found {}", v.kind()),
                ));
            }
            (Node::Scalar(_, k), v) if k == "ssh_keys" => match key_list(v) {
                Ok(list) => keys = Some(list),
                Err(e) => errors.push(e),
            },
            (Node::Scalar(l, k), _) => errors.push((
                l,
                format!("unknown field `{k}` in team entry (expected `team` and `ssh_keys`)"),
            )),
            (k, _) => errors.push((k.line(), "team entry keys must be plain strings".into())),
        }
    }
    let team = match team {
        Some((l, name)) if name.trim().is_empty() => {
            errors.push((l, "empty team name".into()));
            String::new()
        }
        Some((_, name)) => name,
        None => {
            errors.push((line, "team entry has no `team:` name".into()));
            String::new()
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(TeamEntry {
        team,
        line,
        keys: keys.unwrap_or_default(),
    })
}

fn key_list(node: Node) -> Result<Vec<(usize, String)>, (usize, String)> {
    match node {
        Node::Seq(_, items) => items
            .into_iter()
            .map(|item| match item {
                Node::Scalar(line, key) => Ok((line, key)),
                other => Err((
                    other.line(),
                    format!(
                        "each ssh_keys item must be a key string, found {}",
                        other.kind()
                    ),
                )),
            })
            .collect(),
        // `ssh_keys:` with nothing after it.
        Node::Scalar(_, s) if s.is_empty() || s == "~" || s == "null" => Ok(Vec::new()),
        other => Err((
            other.line(),
            format!("`ssh_keys` must be a list of keys, found {}", other.kind()),
        )),
    }
}
