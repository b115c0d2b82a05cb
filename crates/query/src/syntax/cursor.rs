//! A character cursor with PostgREST's lexical rules for names, quoting and JSON paths, shared by
//! the `select`, filter, `order` and logic-tree parsers.

use crate::ast::{Arrow, Field, JsonKey, JsonStep};

/// Position-tracking reader over one query-parameter value.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    chars: Vec<char>,
    pos: usize,
}

/// A parse failure at a position: what was found and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based column.
    pub(crate) column: usize,
    /// `unexpected "x"` or `unexpected end of input`.
    pub(crate) unexpected: String,
    /// What would have been accepted.
    pub(crate) expecting: Vec<&'static str>,
}

impl SyntaxError {
    /// PostgREST's details line: `unexpected "x" expecting a, b or c`.
    pub(crate) fn details(&self) -> String {
        let mut text = self.unexpected.clone();
        if !self.expecting.is_empty() {
            text.push_str(" expecting ");
            text.push_str(&join_alternatives(&self.expecting));
        }
        text
    }
}

fn join_alternatives(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

impl Cursor {
    pub(crate) fn new(source: &str) -> Self {
        Self {
            chars: source.chars().collect(),
            pos: 0,
        }
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(crate) fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let ch = self.peek()?;
        self.pos += 1;
        Some(ch)
    }

    /// True (and consumed) when the input continues with `text`.
    pub(crate) fn eat(&mut self, text: &str) -> bool {
        let count = text.chars().count();
        let matches = text
            .chars()
            .enumerate()
            .all(|(i, ch)| self.peek_at(i) == Some(ch));
        if matches {
            self.pos += count;
        }
        matches
    }

    /// Like [`Self::eat`], ignoring ASCII case.
    pub(crate) fn eat_ignore_case(&mut self, text: &str) -> bool {
        let count = text.chars().count();
        let matches = text
            .chars()
            .enumerate()
            .all(|(i, ch)| self.peek_at(i).is_some_and(|c| c.eq_ignore_ascii_case(&ch)));
        if matches {
            self.pos += count;
        }
        matches
    }

    pub(crate) fn starts_with(&self, text: &str) -> bool {
        text.chars()
            .enumerate()
            .all(|(i, ch)| self.peek_at(i) == Some(ch))
    }

    pub(crate) fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.pos += 1;
        }
    }

    /// Everything not yet consumed.
    pub(crate) fn rest(&mut self) -> String {
        let rest: String = self.chars[self.pos..].iter().collect();
        self.pos = self.chars.len();
        rest
    }

    /// An error at the current position.
    pub(crate) fn error(&self, expecting: &[&'static str]) -> SyntaxError {
        let unexpected = match self.peek() {
            Some(ch) => format!("{ch:?}").replace('\'', "\""),
            None => "end of input".to_owned(),
        };
        SyntaxError {
            column: self.pos + 1,
            unexpected: format!("unexpected {unexpected}"),
            expecting: expecting.to_vec(),
        }
    }

    pub(crate) fn expect(&mut self, text: &'static str) -> Result<(), SyntaxError> {
        if self.eat(text) {
            Ok(())
        } else {
            Err(self.error(&[text]))
        }
    }

    /// A column, relation or alias name: double-quoted (backslash escapes the next character) or
    /// unquoted (letters, digits, `_`, `$`, spaces, and `-` when not starting `->`).
    pub(crate) fn name(&mut self) -> Result<String, SyntaxError> {
        if self.peek() == Some('"') {
            return self.quoted();
        }
        let start = self.pos;
        while let Some(ch) = self.peek() {
            let accepted = ch.is_alphanumeric()
                || matches!(ch, '_' | '$' | ' ')
                || (ch == '-' && self.peek_at(1) != Some('>'));
            if !accepted {
                break;
            }
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        let trimmed = name.trim();
        if trimmed.is_empty() {
            self.pos = start;
            return Err(self.error(&["field name (* or [a..z0..9_$])"]));
        }
        Ok(trimmed.to_owned())
    }

    /// A double-quoted string; `\x` stands for `x`.
    pub(crate) fn quoted(&mut self) -> Result<String, SyntaxError> {
        self.expect("\"")?;
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(&["\"\\\"\""])),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some(ch) => out.push(ch),
                    None => return Err(self.error(&["escaped character"])),
                },
                Some(ch) => out.push(ch),
            }
        }
    }

    /// `name` followed by any `->key` / `->>key` steps.
    pub(crate) fn field(&mut self) -> Result<Field, SyntaxError> {
        let name = self.name()?;
        let mut path = Vec::new();
        while self.starts_with("->") {
            let arrow = if self.eat("->>") {
                Arrow::Text
            } else {
                self.pos += 2;
                Arrow::Json
            };
            path.push(JsonStep {
                arrow,
                key: self.json_key()?,
            });
        }
        Ok(Field { name, path })
    }

    fn json_key(&mut self) -> Result<JsonKey, SyntaxError> {
        if self.peek() == Some('"') {
            return Ok(JsonKey::Name(self.quoted()?));
        }
        let start = self.pos;
        if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        let continues_name = self.peek().is_some_and(|c| {
            c.is_alphanumeric()
                || matches!(c, '_' | '$' | ' ')
                || (c == '-' && self.peek_at(1) != Some('>'))
        });
        if !continues_name && let Ok(index) = digits.parse::<i64>() {
            return Ok(JsonKey::Index(index));
        }
        self.pos = start;
        Ok(JsonKey::Name(self.name()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_json_paths() {
        let mut cursor = Cursor::new("meta->>\"odd key\"");
        let field = cursor.field().unwrap();
        assert_eq!(field.name, "meta");
        assert_eq!(
            field.path,
            vec![JsonStep {
                arrow: Arrow::Text,
                key: JsonKey::Name("odd key".into())
            }]
        );

        let mut cursor = Cursor::new("data->0->>-1");
        let field = cursor.field().unwrap();
        assert_eq!(
            field.path,
            vec![
                JsonStep {
                    arrow: Arrow::Json,
                    key: JsonKey::Index(0)
                },
                JsonStep {
                    arrow: Arrow::Text,
                    key: JsonKey::Index(-1)
                },
            ]
        );

        let mut cursor = Cursor::new("my-col");
        assert_eq!(cursor.name().unwrap(), "my-col");
        let mut cursor = Cursor::new("\"a\\\"b.c\"");
        assert_eq!(cursor.name().unwrap(), "a\"b.c");
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let mut cursor = Cursor::new("(x");
        let error = cursor.name().unwrap_err();
        assert_eq!(error.column, 1);
        assert_eq!(error.unexpected, "unexpected \"(\"");
    }
}
