//! YAML read into a small tree that remembers the line of every node, so
//! that a policy can say which line of its input to fix.
//!
//! Needs the SDK's `yaml` feature: `keygate-policy-sdk = { ..., features =
//! ["yaml"] }`.
//!
//! [`parse`] reads one document into [`Node`]s: strings, lists and
//! mappings whose keys are strings, each with its 1-based line. Every
//! scalar stays a string (`3`, `true` and `~` included); tags are ignored.
//! What a policy's input has no use for is refused rather than half
//! understood: anchors and aliases (which also rules out alias-expansion
//! attacks), mapping keys that are lists or mappings, a second document,
//! and nesting deeper than [`MAX_DEPTH`]. The first such problem, or the
//! first syntax error, is the [`Fault`] that `parse` returns.
//!
//! [`Fields`] and the `into_*` readers on [`Node`] check a document against
//! a format: each field at most once, no unknown fields, values of the
//! right kind. They push a [`Fault`] and carry on, so that one load reports
//! everything that is wrong, each as `FILE:LINE: message` with
//! [`Fault::in_file`].
//!
//! ```
//! use keygate_policy_sdk::yaml::{self, Fields, push_err};
//!
//! let text = "owner: alice\nteams: [main, data]\nglobal: maybe\n";
//! let root = yaml::parse(text).map_err(|f| f.in_file("rules.yml"))?;
//! let root = root.ok_or("rules.yml is empty")?;
//!
//! // Reading nodes directly.
//! let (key, owner) = root.get("owner").ok_or("no owner")?;
//! assert_eq!((key.line, owner.as_str()), (1, Some("alice")));
//! let teams = root.get("teams").and_then(|(_, teams)| teams.as_list());
//! assert_eq!(teams.map(<[_]>::len), Some(2));
//!
//! // Reading fields, collecting every fault.
//! let mut faults = Vec::new();
//! let mut fields = Fields::of(root, "a key entry").map_err(|f| f.in_file("rules.yml"))?;
//! fields.check(&["owner", "teams", "global"], "key entry", &mut faults);
//! let owner = fields.string("owner", "key entry", &mut faults);
//! let teams = fields.take("teams").map(|n| n.into_strings("teams", &mut faults));
//! let global = fields.take("global").map(|n| n.into_bool("global"));
//! let global = global.and_then(|result| push_err(result, &mut faults));
//! assert_eq!(owner.map(|t| t.value).as_deref(), Some("alice"));
//! assert_eq!(teams.map(|t| t.len()), Some(2));
//! assert_eq!(global, None);
//! let messages: Vec<String> = faults.iter().map(|f| f.in_file("rules.yml")).collect();
//! assert_eq!(messages, ["rules.yml:3: `global` must be true or false"]);
//! # Ok::<(), String>(())
//! ```

mod builder;
mod fields;

use std::fmt;

pub use fields::{Fields, push_err};

/// Nesting deeper than this many lists and mappings is refused.
pub const MAX_DEPTH: usize = 32;

/// A string with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// The 1-based line.
    pub line: usize,
    /// The string, unquoted and unescaped.
    pub value: String,
}

/// One node of the tree. Lists and mappings carry the line they start on;
/// a mapping keeps its entries in the order written, repeats included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Any scalar: a string, number, boolean or null, as written.
    Scalar(Text),
    /// A list (a YAML sequence) and its line.
    List(usize, Vec<Node>),
    /// A mapping and its line: each key with its value.
    Map(usize, Vec<(Text, Node)>),
}

impl Node {
    /// The 1-based line the node starts on.
    pub fn line(&self) -> usize {
        match self {
            Node::Scalar(text) => text.line,
            Node::List(line, _) | Node::Map(line, _) => *line,
        }
    }

    /// What the node is, for messages: "a string", "a list" or "a mapping".
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Scalar(..) => "a string",
            Node::List(..) => "a list",
            Node::Map(..) => "a mapping",
        }
    }

    /// Whether the node is YAML's null: nothing after `field:`, `~` or
    /// `null`. Quotes are not told apart, so `''` is null too.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(t) if matches!(t.value.as_str(), "" | "~" | "null"))
    }

    /// The scalar's text and line, if the node is a scalar.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Node::Scalar(text) => Some(text),
            _ => None,
        }
    }

    /// The scalar's string, if the node is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        self.as_text().map(|text| text.value.as_str())
    }

    /// The items, if the node is a list.
    pub fn as_list(&self) -> Option<&[Node]> {
        match self {
            Node::List(_, items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if the node is a mapping.
    pub fn as_map(&self) -> Option<&[(Text, Node)]> {
        match self {
            Node::Map(_, entries) => Some(entries),
            _ => None,
        }
    }

    /// The first entry under `key`, with the key's line, if the node is a
    /// mapping that has one.
    pub fn get(&self, key: &str) -> Option<(&Text, &Node)> {
        let entries = self.as_map()?;
        entries
            .iter()
            .find(|(name, _)| name.value == key)
            .map(|(name, value)| (name, value))
    }
}

/// A problem in a YAML input: the line it is on and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong: lowercase, no trailing period, no file or line.
    pub message: String,
}

impl Fault {
    /// A fault on `line`.
    pub fn new(line: usize, message: impl Into<String>) -> Fault {
        Fault {
            line,
            message: message.into(),
        }
    }

    /// The fault as an operator reads it: `NAME:LINE: message`, where
    /// `name` names the input (usually its path).
    pub fn in_file(&self, name: &str) -> String {
        format!("{name}:{}: {}", self.line, self.message)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for Fault {}

/// Parse one YAML document into a tree.
///
/// A document with nothing in it (empty, only comments, or a null such as
/// `~`) is `Ok(None)`. Syntax errors are faults whose message starts with
/// `invalid YAML; `; see the [module docs](self) for what else is refused.
pub fn parse(text: &str) -> Result<Option<Node>, Fault> {
    builder::build(text)
}

#[cfg(test)]
mod tests;
